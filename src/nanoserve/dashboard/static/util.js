// Small helpers shared by the pages: element building, the API, formatting, the toast.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// A two-column list of [label, value] pairs.
export function kv(...pairs) {
  return h("div", { class: "kv" }, pairs.flatMap(([k, v]) => [h("div", {}, k), h("div", {}, v)]));
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function errorOf(res) {
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    const e = body.error;
    message = typeof e === "string" ? e : (e && e.message) || message;
  } catch { /* not JSON */ }
  return new ApiError(res.status, message);
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  return res.json();
}

// POST a JSON body and yield each `data:` payload of the SSE answer (chat streaming).
export async function* streamSSE(path, body, signal) {
  const res = await fetch(path, {
    method: "POST", credentials: "same-origin", signal,
    headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  if (!res.ok) throw await errorOf(res);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let at;
    while ((at = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data:")) yield line.slice(5).trim();
      }
    }
  }
}

export const fmt = {
  n: (v, d = 0) => (v === null || v === undefined ? "—" : Number(v).toLocaleString(undefined, { maximumFractionDigits: d })),
  ms: (v) => (v === null || v === undefined ? "—" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`),
  mib: (v) => (v === null || v === undefined ? "—" : v >= 1024 ? `${(v / 1024).toFixed(1)} GiB` : `${Math.round(v)} MiB`),
  time: (unix) => (unix ? new Date(unix * 1000).toLocaleTimeString() : "—"),
  ago: (unix) => {
    if (!unix) return "—";
    const s = Math.max(0, Date.now() / 1000 - unix);
    return s < 60 ? `${Math.round(s)} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
  },
  left: (iso) => {
    if (!iso) return "—";
    const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
    return s <= 0 ? "now" : s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
  },
};

let toastTimer;
export function toast(message, ok = false) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = ok ? "toast ok" : "toast";
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, ok ? 2500 : 6000);
}

export function pill(state) {
  return h("span", { class: `pill ${state}` }, state);
}
