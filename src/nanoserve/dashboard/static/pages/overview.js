// Overview: headline figures, live charts over 5/15/60 minutes, memory per device by model.
import { api, fmt, h } from "../util.js";
import { LineChart } from "../chart.js";

const COLORS = ["#38bdf8", "#a78bfa", "#34d399", "#fbbf24", "#f472b6", "#fb923c", "#22d3ee", "#c084fc"];
const HOLDING = new Set(["starting", "ready", "draining", "stopping"]);

export function mount(view, { live, top }) {
  let span = 300;
  let data = null;
  const seg = h("div", { class: "seg" }, [300, 900, 3600].map((s) => h("button", {
    class: s === span ? "on" : "", "data-window": s,
    onclick: (e) => { span = s; for (const b of seg.children) b.classList.toggle("on", b === e.target); refresh(); },
  }, `${s / 60} min`)));
  top.append(seg);

  const stats = h("div", { class: "grid g4", id: "stats" });
  const charts = {};
  const chartCard = (id, title, series, unit) => {
    const canvas = h("canvas", { class: "chart", id: `chart-${id}` });
    charts[id] = new LineChart(canvas, series, { unit });
    return h("div", { class: "card" }, h("h2", {}, title), canvas,
      h("div", { class: "legend" }, series.map((s) => h("span", {}, h("i", { style: `background:${s.color}` }), s.label))));
  };
  const rejections = h("div", { class: "card", id: "rejections" });
  const devices = h("div", { class: "card", id: "devices" });
  const usage = h("div", { class: "card", id: "usage", style: "margin-top:14px", hidden: true });
  view.append(
    stats,
    h("div", { class: "grid g2c", style: "margin-top:14px" },
      chartCard("tokens", "Throughput", [{ key: "tokens_per_s", label: "tokens/s", color: COLORS[0] }, { key: "requests", label: "requests", color: COLORS[2] }], ""),
      chartCard("load", "Running and waiting", [{ key: "running", label: "running", color: COLORS[1] }, { key: "waiting", label: "waiting", color: COLORS[3] }], ""),
      chartCard("ttft", "Time to first token", [{ key: "ttft_p50_ms", label: "p50", color: COLORS[0] }, { key: "ttft_p95_ms", label: "p95", color: COLORS[4] }], " ms"),
      chartCard("queue", "Queue wait", [{ key: "queue_p50_ms", label: "p50", color: COLORS[2] }, { key: "queue_p95_ms", label: "p95", color: COLORS[5] }], " ms"),
    ),
    h("div", { class: "grid g2c", style: "margin-top:14px" }, devices, rejections),
    usage,
  );
  window.nanoserveCharts = charts;

  function stat(label, value, sub) {
    return h("div", { class: "card stat" }, h("div", { class: "l" }, label), h("div", { class: "v" }, value), h("div", { class: "s" }, sub || ""));
  }

  function renderStats(latest) {
    const t = data.totals;
    const sum = (key) => data.points.reduce((a, p) => a + (p[key] || 0), 0);
    const requests = sum("requests"), errors = sum("errors");
    const tokens = Math.round(data.points.reduce((a, p) => a + p.tokens_per_s * data.step, 0));
    stats.replaceChildren(
      stat("Running", fmt.n(latest ? latest.running : 0), `${fmt.n(latest ? latest.waiting : 0)} waiting`),
      stat("Tokens/s", fmt.n(latest ? latest.tokens_per_s : 0, 1), `${fmt.n(tokens)} tokens in ${span / 60} min`),
      stat("Requests", fmt.n(requests), `${fmt.n(errors)} errors in ${span / 60} min`),
      stat("TTFT p50 / p95", fmt.ms(t.ttft_p50_ms), `p95 ${fmt.ms(t.ttft_p95_ms)}`),
      stat("Queue wait p50 / p95", fmt.ms(t.queue_p50_ms), `p95 ${fmt.ms(t.queue_p95_ms)}`),
    );
    stats.querySelector(".stat:nth-child(3)").id = "stat-requests";
    stats.querySelector("#stat-requests .v").dataset.value = requests;
    const reasons = Object.entries(t.rejections);
    rejections.replaceChildren(h("h2", {}, `Rejections (${span / 60} min)`), reasons.length
      ? h("table", {}, h("tr", {}, h("th", {}, "reason"), h("th", { class: "num" }, "requests")),
        reasons.map(([r, n]) => h("tr", {}, h("td", {}, r), h("td", { class: "num" }, fmt.n(n)))))
      : h("div", { class: "empty" }, "None: every request was admitted."));
  }

  function draw() {
    for (const c of Object.values(charts)) c.set(data.points, data.seconds);
  }

  async function refresh() {
    data = await api(`/dashboard/series?window=${span}`);
    draw();
    renderStats(data.points[data.points.length - 1]);
  }

  async function refreshDevices() {
    const status = await api("/dashboard/overview");
    const parts = {}; // device -> [{id, mib, measured}]
    status.models.forEach((m) => {
      for (const r of m.replicas) {
        if (!HOLDING.has(r.state)) continue;
        const measured = r.measured_mib !== null;
        const size = measured ? r.measured_mib : (m.estimated_mib || 0) / Math.max(1, m.replicas.length);
        (parts[r.device] ||= []).push({ id: r.id, mib: size, measured });
      }
    });
    devices.replaceChildren(h("h2", {}, "Memory"), ...status.devices.map((d) => {
      const total = d.total_mib || 1;
      const mine = parts[d.name] || [];
      const modelsMib = mine.reduce((a, p) => a + p.mib, 0);
      const other = Math.max(0, d.used_mib - modelsMib);
      const segments = mine.map((p, i) => h("span", {
        class: p.measured ? "" : "est", title: `${p.id}: ${fmt.mib(p.mib)} ${p.measured ? "measured" : "estimated"}`,
        style: `width:${(100 * p.mib) / total}%;${p.measured ? `background:${COLORS[i % COLORS.length]}` : ""}`,
      }));
      segments.push(h("span", { title: `other processes: ${fmt.mib(other)}`, style: `width:${(100 * other) / total}%;background:#334155` }));
      return h("div", { class: "dev" },
        h("div", { class: "row" }, h("b", {}, d.name + (d.label ? ` (${d.label})` : "")),
          h("span", { class: "muted" }, `${fmt.mib(d.used_mib)} used of ${fmt.mib(d.total_mib)} · budget ${fmt.mib(d.budget_mib)} · models ${fmt.mib(d.models_mib)}`)),
        h("div", { class: "bar" }, segments),
        h("div", { class: "legend" }, mine.map((p, i) => h("span", {}, h("i", { style: `background:${p.measured ? COLORS[i % COLORS.length] : "#7c6cf0"}` }), `${p.id} ${fmt.mib(p.mib)}${p.measured ? "" : " (estimated)"}`)),
          h("span", {}, h("i", { style: "background:#334155" }), `other ${fmt.mib(other)}`)));
    }));
  }

  async function refreshUsage() {
    const { keys } = await api("/dashboard/usage");
    const rows = Object.entries(keys);
    usage.hidden = rows.length === 0; // only where API keys are in use
    usage.replaceChildren(h("h2", {}, "Usage per API key (since start)"), h("table", {},
      h("tr", {}, ["key", "requests", "prompt tokens", "completion tokens", "models"].map((c, i) => h("th", { class: i && i < 4 ? "num" : "" }, c))),
      rows.map(([name, u]) => h("tr", {}, h("td", {}, name), h("td", { class: "num" }, fmt.n(u.requests)),
        h("td", { class: "num" }, fmt.n(u.prompt_tokens)), h("td", { class: "num" }, fmt.n(u.completion_tokens)),
        h("td", { class: "muted" }, Object.keys(u.models).join(", ") || "—")))));
  }

  let ticks = 0;
  const off = live.subscribe((msg) => {
    if (!data) return;
    ticks += 1;
    if (span === 300 && data.step === 1) {
      const points = data.points;
      const last = points[points.length - 1];
      if (!last || msg.point.t > last.t) {
        points.push(msg.point);
        while (points.length && points[0].t <= msg.point.t - span) points.shift();
      }
      draw();
      renderStats(msg.point);
    }
    if (ticks % 5 === 0) refresh(); // percentiles over the whole window, and the longer windows
    if (ticks % 5 === 0) { refreshDevices(); refreshUsage(); }
  });
  const onResize = () => data && draw();
  window.addEventListener("resize", onResize);
  refresh();
  refreshDevices();
  refreshUsage();
  return { unmount() { off(); window.removeEventListener("resize", onResize); } };
}
