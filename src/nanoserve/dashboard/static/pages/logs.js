// Logs: the tail of the gateway's own log and of each worker's.
import { api, h, toast } from "../util.js";

export function mount(view, { live }) {
  const source = h("select", { id: "log-source", onchange: () => refresh() }, h("option", { value: "gateway" }, "gateway"));
  const follow = h("input", { type: "checkbox", checked: true, id: "log-follow" });
  const pre = h("pre", { class: "log", id: "log-text" }, "");
  view.append(h("div", { class: "row", style: "margin-bottom:12px" }, source, h("label", {}, follow, "follow"),
    h("button", { onclick: () => refresh() }, "Refresh")), pre);

  async function refresh() {
    try {
      const r = await api(`/dashboard/logs?source=${encodeURIComponent(source.value)}&lines=500`);
      const known = [...source.options].map((o) => o.value);
      for (const s of r.sources) if (!known.includes(s)) source.append(h("option", { value: s }, s === "gateway" ? s : `worker ${s}`));
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      pre.textContent = r.text || "(empty)";
      if (atEnd || follow.checked) pre.scrollTop = pre.scrollHeight;
    } catch (err) { toast(err.message); }
  }
  let ticks = 0;
  const off = live.subscribe(() => { if (follow.checked && ++ticks % 2 === 0) refresh(); });
  refresh();
  return { unmount: off };
}
