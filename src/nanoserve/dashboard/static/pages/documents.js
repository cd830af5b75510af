// Documents: collections, upload with progress, ask with citations, the query's trace, feedback,
// and the documents' learned values.
import { api, fmt, h, kv, toast } from "../util.js";

const TEXT_TYPES = /\.(txt|md|markdown|html?|rst|csv|json)$/i;

export function mount(view) {
  const collections = h("div", { class: "card", id: "collections" });
  const collection = h("input", { id: "doc-collection", value: "default", style: "width:160px" });
  const file = h("input", { type: "file", id: "doc-file", multiple: true, accept: ".txt,.md,.markdown,.html,.htm,.rst,.csv,.json" });
  const bar = h("span");
  const progress = h("div", { class: "progress", style: "margin-top:8px" }, bar);
  const uploadLog = h("div", { id: "doc-upload-log", class: "muted", style: "margin-top:6px" });
  const question = h("input", { id: "doc-question", placeholder: "Ask your documents…", style: "flex:1;min-width:200px" });
  const answer = h("div", { id: "doc-answer" });
  const trace = h("div", { id: "doc-trace" });
  const values = h("div", { class: "card", id: "doc-values" });
  collection.addEventListener("change", () => refresh());

  view.append(h("div", { class: "grid g2" },
    h("div", {},
      h("div", { class: "card" }, h("h2", {}, "Add documents"),
        h("div", { class: "row" }, h("label", {}, "collection", collection), file,
          h("button", { class: "primary", id: "doc-upload", onclick: upload }, "Upload")),
        progress, uploadLog),
      h("div", { style: "margin-top:14px" }, collections)),
    h("div", {},
      h("div", { class: "card" }, h("h2", {}, "Ask"),
        h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); ask(); } }, question, h("button", { class: "primary", id: "doc-ask", type: "submit" }, "Ask")),
        answer, trace),
      h("div", { style: "margin-top:14px" }, values))));

  function send(name, doc) {
    // XMLHttpRequest for its upload progress; a JSON body (the gate refuses a browser's non-JSON writes)
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `/v1/rag/collections/${encodeURIComponent(name)}/documents`);
      xhr.setRequestHeader("content-type", "application/json");
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.style.width = `${(100 * e.loaded) / e.total}%`; };
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        if (xhr.status < 300) resolve(body);
        else reject(new Error((body.error && body.error.message) || `${xhr.status}`));
      };
      xhr.onerror = () => reject(new Error("upload failed (network)"));
      xhr.send(JSON.stringify(doc));
    });
  }

  async function upload() {
    const name = collection.value.trim() || "default";
    for (const f of file.files) {
      if (!TEXT_TYPES.test(f.name)) { toast(`${f.name}: only text, Markdown and HTML files from the page (PDFs through the API)`); continue; }
      bar.style.width = "0";
      uploadLog.textContent = `uploading ${f.name}…`;
      try {
        const r = await send(name, { name: f.name, text: await f.text() });
        bar.style.width = "100%";
        uploadLog.textContent = `${f.name}: ${r.status}, ${fmt.n(r.chunks)} chunks in ${fmt.ms(r.total_ms)}`;
      } catch (err) { uploadLog.textContent = `${f.name}: ${err.message}`; toast(err.message); }
    }
    refresh();
  }

  async function ask() {
    const q = question.value.trim();
    if (!q) return;
    answer.replaceChildren(h("p", { class: "muted" }, "Thinking…"));
    trace.replaceChildren();
    try {
      const r = await api("/v1/rag/query", { method: "POST", body: { collection: collection.value.trim() || "default", query: q } });
      const rate = async (rating, btn) => {
        try { await api("/v1/rag/feedback", { method: "POST", body: { trace_id: r.trace_id, rating } }); btn.parentElement.querySelectorAll("button").forEach((b) => { b.disabled = true; }); toast("Thanks: feedback recorded", true); loadValues(); }
        catch (err) { toast(err.message); }
      };
      answer.replaceChildren(
        h("p", { class: "answer-text", style: "white-space:pre-wrap;margin:12px 0 6px" }, r.answer || "(no answer)"),
        h("div", { class: "muted" }, `${r.answer_mode} · ${r.intent || "—"} · ${r.strategy || "—"} · ${fmt.ms(r.timings_ms && r.timings_ms.total)}`),
        ...r.citations.map((c) => h("div", { class: "cite" }, h("b", {}, `[${c.n}] ${c.document}`), c.section ? h("span", { class: "muted" }, ` · ${c.section}`) : null,
          h("div", { class: "muted", style: "margin-top:4px" }, c.text.length > 280 ? `${c.text.slice(0, 280)}…` : c.text))),
        h("div", { class: "row", style: "margin-top:8px" },
          h("button", { id: "doc-good", onclick: (e) => rate(1, e.target) }, "Helpful"), h("button", { id: "doc-bad", onclick: (e) => rate(-1, e.target) }, "Not helpful"),
          h("button", { onclick: () => showTrace(r.trace_id) }, "Trace")));
    } catch (err) { answer.replaceChildren(h("p", { class: "pill err" }, err.message)); }
  }

  async function showTrace(id) {
    try {
      const t = await api(`/v1/rag/traces/${encodeURIComponent(id)}`);
      trace.replaceChildren(h("div", { class: "plan", id: "doc-trace-body" },
        h("h3", {}, `Trace ${t.id}`),
        kv(["route", t.route || "—"], ["strategy", t.strategy || "—"], ["answer mode", t.answer_mode || "—"], ["total", fmt.ms(t.total_ms)]),
        h("table", { style: "margin-top:8px" }, t.phases.map((p) => h("tr", {}, h("td", {}, p.name), h("td", { class: "num" }, fmt.ms(p.ms))))),
        h("table", { style: "margin-top:8px" }, h("tr", {}, h("th", {}, "retrieved"), h("th", { class: "num" }, "score")),
          t.retrieved.map((c) => h("tr", {}, h("td", {}, `${c.document || ""} ${c.section || ""}`), h("td", { class: "num" }, fmt.n(c.score, 3)))))));
    } catch (err) { toast(err.message); }
  }

  async function loadValues() {
    try {
      const v = await api(`/v1/rag/values?collection=${encodeURIComponent(collection.value.trim() || "default")}&limit=20`);
      values.replaceChildren(h("h2", {}, "Document values (learned from feedback)"), v.documents.length
        ? h("table", {}, v.documents.map((d) => h("tr", {}, h("td", {}, d.document), h("td", { class: "num" }, fmt.n(d.value, 3)), h("td", { class: "num muted" }, `${fmt.n(d.feedback)} feedback`))))
        : h("div", { class: "empty" }, "No feedback yet."));
    } catch (err) { values.replaceChildren(h("h2", {}, "Document values"), h("div", { class: "empty" }, err.message)); }
  }

  async function refresh() {
    let names = [];
    try {
      const { data } = await api("/v1/rag/collections");
      names = data.map((c) => c.name);
      collections.replaceChildren(h("h2", {}, "Collections"), data.length
        ? h("table", {}, h("tr", {}, h("th", {}, "name"), h("th", { class: "num" }, "documents"), h("th", { class: "num" }, "chunks"), h("th", {}, "embedding model")),
          data.map((c) => h("tr", { class: "click", onclick: () => { collection.value = c.name; loadValues(); } },
            h("td", {}, c.name), h("td", { class: "num" }, fmt.n(c.documents)), h("td", { class: "num" }, fmt.n(c.chunks)), h("td", { class: "muted" }, c.embedding_model))))
        : h("div", { class: "empty" }, "No collections yet: upload a document."));
    } catch (err) { toast(err.message); }
    if (names.includes(collection.value.trim())) loadValues();
    else values.replaceChildren(h("h2", {}, "Document values"), h("div", { class: "empty" }, "No documents in this collection yet."));
  }
  refresh();
  return {};
}
