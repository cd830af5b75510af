// Models: every model and replica, with load (after its dry run), unload and pin.
import { api, fmt, h, pill, toast } from "../util.js";

export function mount(view, { live }) {
  const table = h("div", { class: "card", id: "models" });
  const plan = h("div", { id: "plan" });
  const events = h("div", { class: "card", id: "events", style: "margin-top:14px" });
  view.append(plan, table, events);
  let status = null;
  let busy = new Set();
  let signature = "";

  function planText(p) {
    if (p.fits) {
      const evicts = p.would_evict.length ? `evicts ${p.would_evict.join(", ")}` : "evicts nothing";
      return `Loading ${p.model} needs ${fmt.mib(p.needed_mib)}, ${evicts}, leaves ${fmt.mib(p.free_after_mib)} free.`;
    }
    if (p.never_fits) return `${p.model} can never fit: it needs ${fmt.mib(p.needed_mib)} on ${p.short_device}.`;
    return `${p.model} does not fit now on ${p.short_device}${p.blocked_by.length ? `: held by ${p.blocked_by.join(", ")} (pinned or busy)` : ""}.`;
  }

  async function dryRun(model) {
    try {
      const p = await api("/models/load", { method: "POST", body: { model, dry_run: true } });
      plan.replaceChildren(h("div", { class: "card plan", style: "margin-bottom:14px" },
        h("div", { id: "plan-text" }, planText(p)),
        h("div", { class: "row", style: "margin-top:8px" },
          h("button", { class: "primary", id: "plan-confirm", disabled: !p.fits && p.never_fits, onclick: () => { plan.replaceChildren(); act(model, "load"); } }, `Load ${model}`),
          h("button", { onclick: () => plan.replaceChildren() }, "Cancel"))));
    } catch (err) { toast(err.message); }
  }

  async function act(model, what, extra = {}) {
    busy.add(model); render();
    try {
      const path = what === "unload" ? "/models/unload" : "/models/load";
      await api(path, { method: "POST", body: { model, ...extra } });
      toast(`${model}: ${what === "unload" ? "unloaded" : extra.pinned !== undefined ? (extra.pinned ? "pinned" : "unpinned") : "loaded"}`, true);
    } catch (err) {
      toast(`${model}: ${err.message}`);
    } finally {
      busy.delete(model);
      await refresh();
    }
  }

  function render() {
    if (!status) return;
    const rows = [];
    for (const m of status.models) {
      const loaded = m.state === "ready";
      const working = busy.has(m.id);
      const last = m.last_unload ? `${m.last_unload.reason} ${fmt.ago(m.last_unload.at)}` : "—";
      rows.push(h("tr", { "data-model": m.id },
        h("td", {}, h("b", {}, m.id), h("div", { class: "muted" }, `${m.kind} · ${m.engine}`)),
        h("td", { class: "state" }, pill(working ? "starting" : m.state), m.error ? h("div", { class: "pill err", title: m.error }, "error") : null),
        h("td", { class: "num" }, fmt.mib(m.measured_mib), h("div", { class: "muted" }, `est. ${fmt.mib(m.estimated_mib)}`)),
        h("td", { class: "num" }, fmt.n(m.in_flight)),
        h("td", { class: "num" }, fmt.n(m.queued)),
        h("td", { class: "num keep", "data-expires": m.expires_at || "" }, m.pinned ? "pinned" : m.keep_alive < 0 ? "forever" : loaded ? fmt.left(m.expires_at) : "—"),
        h("td", { class: "num" }, fmt.n(m.priority)),
        h("td", { class: "num" }, fmt.n(m.loads)),
        h("td", {}, last),
        h("td", {}, h("div", { class: "row" },
          h("button", { class: "load", disabled: working || loaded, onclick: () => dryRun(m.id) }, "Load"),
          h("button", { class: "unload danger", disabled: working || m.state === "stopped", onclick: () => act(m.id, "unload") }, "Unload"),
          h("button", { class: "pin", disabled: working, onclick: () => act(m.id, "pin", { pinned: !m.pinned }) }, m.pinned ? "Unpin" : "Pin"))),
      ));
      if (m.replicas.length > 1 || (m.replicas[0] && m.replicas[0].replica > 0)) {
        for (const r of m.replicas) {
          rows.push(h("tr", { class: "replica" },
            h("td", { class: "muted" }, `↳ ${r.id}`), h("td", {}, pill(r.state)),
            h("td", { class: "num" }, fmt.mib(r.measured_mib), h("div", { class: "muted" }, r.device)),
            h("td", { class: "num" }, fmt.n(r.in_flight)), h("td", { class: "num" }, fmt.n(r.queued)),
            h("td", { colspan: 5, class: "muted" }, `${fmt.n(r.requests_total)} requests · pid ${r.pid ?? "—"}`)));
        }
      }
    }
    table.replaceChildren(h("table", {},
      h("tr", {}, ["model", "state", "memory", "in flight", "queued", "keep-alive", "priority", "loads", "last unload", ""].map((c, i) => h("th", { class: i >= 2 && i <= 7 ? "num" : "" }, c))),
      rows));
  }

  async function refresh() {
    try {
      status = await api("/dashboard/overview");
      render();
      const ev = await api("/dashboard/events?limit=20");
      events.replaceChildren(h("h2", {}, "Lifecycle events"), ev.data.length
        ? h("table", {}, h("tr", {}, ["time", "model", "event", "reason"].map((c) => h("th", {}, c))),
          ev.data.map((e) => h("tr", {}, h("td", { class: "muted", style: "width:130px" }, fmt.time(e.at)), h("td", { style: "width:260px" }, e.model + (e.replica ? ` #${e.replica}` : "")),
            h("td", { style: "width:160px" }, e.event), h("td", { class: "muted" }, e.reason || ""))))
        : h("div", { class: "empty" }, "No events yet."));
    } catch (err) { toast(err.message); }
  }

  let ticks = 0;
  const off = live.subscribe((msg) => {
    const sig = JSON.stringify(msg.models);
    ticks += 1;
    if (sig !== signature || ticks % 10 === 0) { signature = sig; refresh(); return; }
    for (const cell of table.querySelectorAll("td.keep[data-expires]")) {
      if (cell.dataset.expires) cell.textContent = fmt.left(cell.dataset.expires);
    }
  });
  refresh();
  return { unmount: off };
}
