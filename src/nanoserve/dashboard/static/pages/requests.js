// Requests: the recent ones (no prompt or answer text is kept), a filter, one request's detail.
import { api, fmt, h, kv, toast } from "../util.js";

export function mount(view, { live, params }) {
  const model = h("input", { placeholder: "model", id: "f-model", style: "width:160px" });
  const status = h("select", { id: "f-status" }, h("option", { value: "" }, "any status"), h("option", { value: "ok" }, "ok"), h("option", { value: "error" }, "errors"));
  const text = h("input", { placeholder: "request id or path", id: "f-text", style: "width:220px" });
  const table = h("div", { class: "card", id: "requests" });
  const detail = h("div", { id: "detail" });
  for (const el of [model, status, text]) el.addEventListener("input", () => refresh());
  view.append(h("div", { class: "row", style: "margin-bottom:12px" }, model, status, text), detail, table);

  async function show(id) {
    try {
      const r = await api(`/dashboard/requests/${encodeURIComponent(id)}`);
      const total = r.total_ms || 1;
      const span = (label, from, ms, color) => h("div", { class: "row", style: "gap:8px;margin:3px 0" },
        h("span", { class: "muted", style: "width:110px" }, label),
        h("div", { style: "flex:1;position:relative;height:10px;background:#0a1020;border-radius:4px" },
          h("span", { style: `position:absolute;left:${(100 * from) / total}%;width:${Math.max(0.5, (100 * (ms || 0)) / total)}%;height:100%;background:${color};border-radius:4px` })),
        h("span", { style: "width:80px;text-align:right" }, fmt.ms(ms)));
      detail.replaceChildren(h("div", { class: "card", style: "margin-bottom:14px" },
        h("div", { class: "row" }, h("h3", {}, `Request ${r.id}`), h("span", { class: "spacer" }), h("button", { onclick: () => detail.replaceChildren() }, "Close")),
        kv(["route", `${r.method} ${r.route}`], ["path", r.path], ["model", r.model || "—"], ["status", String(r.status)],
          ["ended", new Date(r.at * 1000).toLocaleString()], ["tokens", `${fmt.n(r.prompt_tokens)} prompt · ${fmt.n(r.completion_tokens)} completion`],
          ["cold start", r.cold_start ? "yes" : "no"], ["rejection", r.rejection || "—"], ["error", r.error || "—"]),
        h("div", { style: "margin-top:10px" },
          span("queue wait", 0, r.queue_ms, "#fbbf24"),
          span("first token", 0, r.ttft_ms, "#38bdf8"),
          span("total", 0, r.total_ms, "#a78bfa"))));
    } catch (err) { toast(err.message); }
  }

  async function refresh() {
    const q = new URLSearchParams({ limit: "200" });
    if (model.value) q.set("model", model.value);
    if (status.value) q.set("status", status.value);
    if (text.value) q.set("q", text.value);
    try {
      const { data } = await api(`/dashboard/requests?${q}`);
      table.replaceChildren(data.length ? h("table", {},
        h("tr", {}, ["time", "id", "model", "route", "status", "tokens in/out", "queue", "TTFT", "total"].map((c, i) => h("th", { class: i >= 5 ? "num" : "" }, c))),
        data.map((r) => h("tr", { class: "click", "data-id": r.id, onclick: () => show(r.id) },
          h("td", { class: "muted" }, fmt.time(r.at)), h("td", { class: "mono" }, r.id.slice(0, 12)),
          h("td", {}, r.model || "—"), h("td", {}, `${r.method} ${r.route}`),
          h("td", {}, h("span", { class: r.status >= 400 || r.error ? "pill failed" : "pill ready", title: r.error || "" }, String(r.status))),
          h("td", { class: "num" }, `${fmt.n(r.prompt_tokens)} / ${fmt.n(r.completion_tokens)}`),
          h("td", { class: "num" }, fmt.ms(r.queue_ms)), h("td", { class: "num" }, fmt.ms(r.ttft_ms)), h("td", { class: "num" }, fmt.ms(r.total_ms)))))
        : h("div", { class: "empty" }, "No requests yet (the dashboard's own calls are not listed)."));
    } catch (err) { toast(err.message); }
  }

  let ticks = 0;
  const off = live.subscribe(() => { if (++ticks % 3 === 0) refresh(); });
  refresh();
  if (params.get("id")) show(params.get("id"));
  return { unmount: off };
}
