// The dashboard's shell: session check (login when keys are required), the hash router, and the
// live feed (one EventSource, shared by every page through `live.subscribe`).
import { api, h, toast, ApiError } from "./util.js";

const PAGES = {
  overview: ["Overview", () => import("./pages/overview.js")],
  models: ["Models", () => import("./pages/models.js")],
  requests: ["Requests", () => import("./pages/requests.js")],
  playground: ["Playground", () => import("./pages/playground.js")],
  documents: ["Documents", () => import("./pages/documents.js")],
  logs: ["Logs", () => import("./pages/logs.js")],
};

export const live = {
  source: null,
  listeners: new Set(),
  last: null,
  subscribe(fn) { this.listeners.add(fn); if (this.last) fn(this.last); return () => this.listeners.delete(fn); },
  start() {
    if (this.source) return;
    const dot = document.getElementById("live-dot");
    this.source = new EventSource("/dashboard/live");
    this.source.onopen = () => dot.classList.add("on");
    this.source.onerror = () => dot.classList.remove("on");
    this.source.onmessage = (e) => {
      this.last = JSON.parse(e.data);
      for (const fn of this.listeners) fn(this.last);
    };
  },
};

let current = null; // the page shown: {unmount?}

async function show() {
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "overview";
  const [title, load] = PAGES[name] || PAGES.overview;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  document.getElementById("title").textContent = title;
  document.getElementById("top-extra").replaceChildren();
  if (current && current.unmount) current.unmount();
  const view = document.getElementById("view");
  const module = await load();
  view.replaceChildren();
  current = module.mount(view, { live, top: document.getElementById("top-extra"), params: new URLSearchParams(location.hash.split("?")[1] || "") }) || {};
  document.body.dataset.page = name;
}

function loginForm(message) {
  const key = h("input", { type: "password", placeholder: "admin API key", autocomplete: "off", id: "login-key", style: "width:100%" });
  const error = h("div", { class: "muted", style: "min-height:20px;margin-top:8px" }, message || "");
  const form = h("form", { class: "card login", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api("/ui/login", { method: "POST", body: { key: key.value } });
      key.value = "";
      boot();
    } catch (err) { error.textContent = err.message; }
  } },
  h("h3", {}, "Sign in"),
  h("p", { class: "muted" }, "This server requires API keys. Sign in once with an admin key; the page keeps a session cookie, never the key."),
  key, h("div", { class: "row", style: "margin-top:10px" }, h("button", { class: "primary", type: "submit" }, "Sign in")), error);
  document.getElementById("title").textContent = "nanoserve";
  document.getElementById("view").replaceChildren(form);
  key.focus();
}

async function boot() {
  let session;
  try {
    session = await api("/dashboard/session");
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return loginForm(err.status === 403 ? err.message : "");
    toast(err.message);
    return;
  }
  const who = document.getElementById("who");
  who.replaceChildren();
  if (session.auth_required && session.key) {
    who.append(`signed in: ${session.key} `, h("a", { href: "#", onclick: async (e) => {
      e.preventDefault();
      await api("/ui/logout", { method: "POST", body: {} });
      location.reload();
    } }, "sign out"));
  } else if (!session.auth_required) {
    who.append("no API keys configured");
  }
  live.start();
  window.addEventListener("hashchange", show);
  await show();
}

boot();
