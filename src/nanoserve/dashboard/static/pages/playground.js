// Playground: streaming chat (temperature, max tokens, JSON mode, a sample tool), and an
// embeddings similarity check.
import { api, fmt, h, streamSSE, toast } from "../util.js";

const SAMPLE_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

export function mount(view) {
  const model = h("select", { id: "pg-model" });
  const embedModel = h("select", { id: "pg-embed-model" });
  const temperature = h("input", { type: "number", id: "pg-temperature", min: 0, max: 2, step: 0.1, value: 0.7, style: "width:70px" });
  const maxTokens = h("input", { type: "number", id: "pg-max-tokens", min: 1, max: 4096, value: 128, style: "width:80px" });
  const jsonMode = h("input", { type: "checkbox", id: "pg-json" });
  const tools = h("input", { type: "checkbox", id: "pg-tools" });
  const chat = h("div", { class: "chat", id: "pg-chat" });
  const input = h("textarea", { rows: 3, id: "pg-input", placeholder: "Say something… (Enter sends, Shift+Enter for a new line)" });
  const send = h("button", { class: "primary", id: "pg-send" }, "Send");
  const clear = h("button", { onclick: () => { history.length = 0; chat.replaceChildren(); } }, "Clear");
  const history = [];
  let controller = null;

  const textA = h("textarea", { rows: 2, id: "pg-a" }, "The cat sat on the mat.");
  const textB = h("textarea", { rows: 2, id: "pg-b" }, "A kitten was sitting on the rug.");
  const simOut = h("div", { id: "pg-similarity", class: "stat" });

  view.append(h("div", { class: "grid", style: "grid-template-columns: minmax(0,2fr) minmax(280px,1fr)" },
    h("div", { class: "card" },
      h("div", { class: "row", style: "margin-bottom:10px" }, h("label", {}, "model", model), h("label", {}, "temperature", temperature),
        h("label", {}, "max tokens", maxTokens), h("label", {}, jsonMode, "JSON mode"), h("label", {}, tools, "tools (get_weather)")),
      chat,
      h("div", { style: "margin-top:10px" }, input),
      h("div", { class: "row", style: "margin-top:8px" }, send, clear, h("span", { class: "spacer" }), h("span", { class: "muted", id: "pg-stats" }))),
    h("div", { class: "card" }, h("h2", {}, "Embeddings similarity"), h("label", {}, "model", embedModel),
      h("div", { style: "margin-top:8px" }, textA), h("div", { style: "margin-top:6px" }, textB),
      h("div", { class: "row", style: "margin-top:8px" }, h("button", { id: "pg-compare", onclick: compare }, "Compare")),
      h("div", { style: "margin-top:12px" }, simOut))));

  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); } });
  send.addEventListener("click", () => (controller ? controller.abort() : submit()));

  async function submit() {
    const content = input.value.trim();
    if (!content || !model.value) return;
    input.value = "";
    history.push({ role: "user", content });
    chat.append(h("div", { class: "msg user" }, content));
    const text = h("span", { class: "answer" });
    const meta = h("div", { class: "meta" }, model.value);
    const bubble = h("div", { class: "msg assistant" }, text, meta);
    chat.append(bubble);
    chat.scrollTop = chat.scrollHeight;
    const body = {
      model: model.value, messages: history, stream: true, stream_options: { include_usage: true },
      temperature: Number(temperature.value), max_tokens: Number(maxTokens.value),
    };
    if (jsonMode.checked) body.response_format = { type: "json_object" };
    if (tools.checked) body.tools = [SAMPLE_TOOL];
    controller = new AbortController();
    send.textContent = "Stop";
    const started = performance.now();
    let first = null, answer = "", usage = null;
    const calls = {};
    try {
      for await (const data of streamSSE("/v1/chat/completions", body, controller.signal)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || String(chunk.error));
        if (chunk.usage) usage = chunk.usage;
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (!delta) continue;
        if (first === null && (delta.content || delta.tool_calls)) first = performance.now();
        if (delta.content) { answer += delta.content; text.textContent = answer; chat.scrollTop = chat.scrollHeight; }
        for (const call of delta.tool_calls || []) {
          const c = (calls[call.index] ||= { name: "", arguments: "" });
          if (call.function && call.function.name) c.name += call.function.name;
          if (call.function && call.function.arguments) c.arguments += call.function.arguments;
          text.textContent = answer + Object.values(calls).map((x) => `\n→ tool call ${x.name}(${x.arguments})`).join("");
        }
      }
      history.push({ role: "assistant", content: answer });
      const secs = (performance.now() - started) / 1000;
      const out = usage ? usage.completion_tokens : null;
      meta.textContent = `${model.value} · first token ${first ? fmt.ms(first - started) : "—"} · ${fmt.n(out)} tokens · ${out ? fmt.n(out / secs, 1) : "—"} tok/s`;
      bubble.dataset.done = "1";
    } catch (err) {
      if (err.name !== "AbortError") { meta.textContent = `error: ${err.message}`; toast(err.message); }
      bubble.dataset.done = "1";
    } finally {
      controller = null;
      send.textContent = "Send";
    }
  }

  async function compare() {
    try {
      const r = await api("/v1/embeddings", { method: "POST", body: { model: embedModel.value, input: [textA.value, textB.value] } });
      const [a, b] = r.data.map((d) => d.embedding);
      let dot = 0, na = 0, nb = 0;
      for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
      const cos = dot / Math.sqrt(na * nb);
      simOut.replaceChildren(h("div", { class: "l" }, "cosine similarity"), h("div", { class: "v", id: "pg-cosine" }, cos.toFixed(3)),
        h("div", { class: "s" }, `${a.length} dimensions`));
    } catch (err) { toast(err.message); }
  }

  api("/dashboard/overview").then((s) => {
    const selects = { chat: model, embedding: embedModel }; // rerank models have no playground
    for (const m of s.models) selects[m.kind]?.append(h("option", { value: m.id }, m.id));
  }).catch((err) => toast(err.message));
  return {};
}
