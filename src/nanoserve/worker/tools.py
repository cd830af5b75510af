"""Tool calling in one documented format: definitions and results in, calls out (docs/tools.md).

A model sees tools the way Hermes and Qwen2.5 models were trained to (the "hermes" format): the
system prompt lists the function signatures inside ``<tools></tools>`` and asks for calls as

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

(one block per call, separated by a newline); earlier calls are rendered the same way in the
assistant's turns, and tool results as ``<tool_response>`` blocks in a ``tool`` turn. The
rendered messages then go through the model's own chat template (plain ChatML for SmolLM2). The
"template" format hands ``tools`` and the structured messages to the model's template instead,
for models whose template knows tools and answers with the same tags (Qwen2.5, Hermes).

The grammar built here lets the model write exactly that block layout, with each tool's
arguments constrained by its parameter schema (``structured.py``); ``CallReader`` reads calls
back from the text as it streams. (What the grammar forces, such as the block's head and a
named function's name, is put in the prompt rather than sampled: see ``output.py``.)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nanoserve.errors import BadRequest
from nanoserve.wire.protocol import ChatMessage
from nanoserve.worker.grammar import Element, Grammar, Lit, Repeat
from nanoserve.worker.structured import Bounds, SchemaBuilder, literal

MAX_PARALLEL_CALLS = 4

_SYSTEM_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


@dataclass(frozen=True, slots=True)
class ToolFormat:
    """How tools, calls and results are written in a prompt, and how calls come back."""

    name: str
    render: Literal["prompt", "template"]  # we render tools into messages, or the template does
    call_open: str = "<tool_call>\n"
    call_close: str = "\n</tool_call>"
    call_sep: str = "\n"
    response_open: str = "<tool_response>\n"
    response_close: str = "\n</tool_response>"
    tool_role: str = "tool"

    def system_prompt(self, tools: Sequence[ToolDef]) -> str:
        listed = "\n".join(literal(t.model_dump(exclude_none=True)) for t in tools)
        return _SYSTEM_PROMPT.format(tools=listed)

    def call_text(self, name: str, arguments: Any) -> str:
        return self.call_open + literal({"name": name, "arguments": arguments}) + self.call_close


TOOL_FORMATS = {
    "hermes": ToolFormat("hermes", render="prompt"),
    "template": ToolFormat("template", render="template"),
}
DEFAULT_TOOL_FORMAT = "hermes"


# -- requests -------------------------------------------------------------------------------------


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"] = "function"
    function: FunctionDef

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def parameters(self) -> dict[str, Any]:
        return self.function.parameters or {"type": "object", "properties": {}}


ToolChoice = Literal["none", "auto", "required"] | str  # or the name of one function


def parse_tools(raw: list[dict[str, Any]] | None) -> list[ToolDef]:
    tools: list[ToolDef] = []
    for i, item in enumerate(raw or []):
        try:
            tools.append(ToolDef.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            param = ".".join(["tools", str(i), *(str(p) for p in err["loc"])])
            raise BadRequest(f"Invalid value for '{param}': {err['msg']}", param=param) from None
        parameters = tools[-1].function.parameters
        if parameters is not None and parameters.get("type", "object") != "object":
            param = f"tools.{i}.function.parameters"
            raise BadRequest(
                f"Invalid value for '{param}': the parameters must be an object schema", param=param
            )
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise BadRequest("tools: function names must be unique", param="tools")
    return tools


def parse_tool_choice(raw: str | dict[str, Any] | None, tools: Sequence[ToolDef]) -> ToolChoice:
    """``"none"``, ``"auto"``, ``"required"`` or the name of the one function to call."""
    if raw is None:
        return "auto" if tools else "none"
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise BadRequest(
                f"Invalid value for 'tool_choice': {raw!r} (expected 'none', 'auto', 'required' "
                "or {'type': 'function', 'function': {'name': ...}})",
                param="tool_choice",
            )
        if raw != "none" and not tools:
            raise BadRequest(f"tool_choice {raw!r} needs 'tools'", param="tool_choice")
        return raw
    function = raw.get("function") if isinstance(raw, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise BadRequest(
            "tool_choice: expected {'type': 'function', 'function': {'name': ...}}", param="tool_choice"
        )
    if name not in {t.name for t in tools}:
        raise BadRequest(f"tool_choice names function {name!r}, which is not in 'tools'", param="tool_choice")
    return name


# -- prompts --------------------------------------------------------------------------------------


def _arguments(call: dict[str, Any], where: str) -> tuple[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest(f"Invalid value for '{where}': a tool call needs function.name", param=where)
    raw = function.get("arguments", "{}")
    if isinstance(raw, str):
        try:
            args = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise BadRequest(
                f"Invalid value for '{where}.function.arguments': not valid JSON",
                param=f"{where}.function.arguments",
            ) from None
    else:
        args = raw
    return function["name"], args


def render_messages(
    messages: Sequence[ChatMessage], tools: Sequence[ToolDef], fmt: ToolFormat
) -> list[dict[str, Any]]:
    """The chat as plain ``{role, content}`` messages for a chat template (``render="prompt"``),
    or as structured messages with ``tool_calls`` for a template that knows tools."""
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        role = "system" if msg.role == "developer" else msg.role
        text = msg.text() or ""
        if role in ("tool", "function"):
            if fmt.render == "template":
                out.append(
                    {"role": "tool", "content": text, "tool_call_id": msg.tool_call_id, "name": msg.name}
                )
                continue
            block = fmt.response_open + text + fmt.response_close
            if out and out[-1]["role"] == fmt.tool_role and out[-1].get("_tool"):
                out[-1]["content"] += "\n" + block  # consecutive results: one turn
            else:
                out.append({"role": fmt.tool_role, "content": block, "_tool": True})
            continue
        if role == "assistant" and msg.tool_calls:
            calls = [_arguments(c, f"messages.{i}.tool_calls.{j}") for j, c in enumerate(msg.tool_calls)]
            if fmt.render == "template":
                structured = [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls]
                out.append({"role": "assistant", "content": text, "tool_calls": structured})
                continue
            body = fmt.call_sep.join(fmt.call_text(n, a) for n, a in calls)
            out.append({"role": "assistant", "content": (text + "\n" if text else "") + body})
            continue
        # image parts stay parts: only engines that declare vision get here with them
        out.append({"role": role, "content": msg.content if msg.has_images() else text})
    for m in out:
        m.pop("_tool", None)
    if tools and fmt.render == "prompt":
        preamble = fmt.system_prompt(tools)
        if out and out[0]["role"] == "system":
            out[0]["content"] = (out[0]["content"] + "\n\n" if out[0]["content"] else "") + preamble
        else:
            out.insert(0, {"role": "system", "content": preamble})
    return out


def template_tools(tools: Sequence[ToolDef], fmt: ToolFormat) -> list[dict[str, Any]] | None:
    """What to pass as ``tools`` to the chat template (only for ``render="template"``)."""
    if fmt.render != "template" or not tools:
        return None
    return [t.model_dump(exclude_none=True) for t in tools]


# -- grammar --------------------------------------------------------------------------------------


def call_grammar(
    g: Grammar,
    tools: Sequence[ToolDef],
    choice: ToolChoice,
    fmt: ToolFormat,
    *,
    max_calls: int,
    bounds: Bounds,
) -> Element:
    """One to ``max_calls`` call blocks, each function's arguments constrained by its parameter
    schema; exactly one call of the function a named ``choice`` names."""
    head = Lit(fmt.call_open + '{"name": ')
    tail = Lit("}" + fmt.call_close)

    def args(tool: ToolDef) -> Element:
        builder = SchemaBuilder(
            g, tool.parameters, where=f"tools.{tool.name}.function.parameters", bounds=bounds
        )
        return builder.value(tool.parameters, "#")

    if choice not in ("auto", "required"):
        tool = next(t for t in tools if t.name == choice)
        return g.rule("call", [head, Lit(literal(tool.name) + ', "arguments": '), args(tool), tail])
    named = g.rule("named-call", *([Lit(literal(t.name) + ', "arguments": '), args(t), tail] for t in tools))
    if max_calls == 1:
        return g.rule("calls", [head, named])
    more = Repeat(g.rule("next-call", [Lit(fmt.call_sep), head, named]), 0, max_calls - 1)
    return g.rule("calls", [head, named, more])


# -- reading calls back ---------------------------------------------------------------------------


@dataclass(slots=True)
class CallStart:
    index: int
    id: str
    name: str


@dataclass(slots=True)
class CallArgs:
    index: int
    text: str


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text

    def openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


CallEvent = CallStart | CallArgs
_NAME = re.compile(r'\{"name": ("(?:[^"\\]|\\.)*"), "arguments": ')


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


@dataclass
class CallReader:
    """Reads call blocks from streamed text written under ``call_grammar``: the name as soon as it
    is complete, then the arguments as they arrive (the end of the arguments object is found by
    following JSON nesting, so no text is held back longer than needed)."""

    fmt: ToolFormat
    calls: list[ToolCall] = field(default_factory=list)
    _buf: str = ""
    _state: Literal["head", "args", "tail"] = "head"
    _depth: int = 0
    _in_string: bool = False
    _escape: bool = False

    def feed(self, text: str) -> list[CallEvent]:
        self._buf += text
        events: list[CallEvent] = []
        while True:
            if self._state == "head":
                event = self._head()
                if event is None:
                    return events
                events.append(event)
            elif self._state == "args":
                chunk, done = self._args()
                if chunk:
                    self.calls[-1].arguments += chunk
                    events.append(CallArgs(len(self.calls) - 1, chunk))
                if not done:
                    return events
            else:
                end = "}" + self.fmt.call_close
                if len(self._buf) < len(end):
                    return events
                if not self._buf.startswith(end):
                    raise ValueError(f"expected {end!r} after the arguments, got {self._buf[: len(end)]!r}")
                self._buf = self._buf[len(end) :]
                self._state = "head"

    def _head(self) -> CallStart | None:
        buf = self._buf.lstrip(self.fmt.call_sep) if self.calls else self._buf
        if not buf.startswith(self.fmt.call_open):
            if len(buf) >= len(self.fmt.call_open):
                raise ValueError(f"expected {self.fmt.call_open!r}, got {buf[:20]!r}")
            return None
        match = _NAME.match(buf, len(self.fmt.call_open))
        if match is None:
            return None
        self._buf = buf[match.end() :]
        call = ToolCall(new_call_id(), json.loads(match.group(1)), "")
        self.calls.append(call)
        self._state, self._depth = "args", 0
        return CallStart(len(self.calls) - 1, call.id, call.name)

    def _args(self) -> tuple[str, bool]:
        """Consume argument text up to the end of its JSON value; True once it ended."""
        buf = self._buf
        for i, ch in enumerate(buf):
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif ch == "\\":
                    self._escape = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self._buf = buf[i + 1 :]
                    self._state = "tail"
                    return buf[: i + 1], True
        self._buf = ""
        return buf, False

    @property
    def complete(self) -> bool:
        return bool(self.calls) and self._state == "head" and not self._buf.strip()
