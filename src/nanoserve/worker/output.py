"""What a chat answer may be (text, JSON, tool calls) and how its text is read back.

``plan_output`` turns ``response_format``, ``tools`` and ``tool_choice`` into an ``OutputPlan``:
the grammar the engine samples under, the text put after the prompt (``prefill``), and how many
tokens to keep in reserve. ``OutputReader`` follows the generated text and turns it into content
and tool-call events; at the end it *closes* a structured answer the engine left unfinished (cut
off by ``max_tokens`` or a stop sequence): the grammar's shortest completion of what was written
is appended, so the answer still parses and validates. The reserve guarantees the completion fits
in ``max_tokens``: the engine is given ``max_tokens - reserve`` (nothing is reserved when the
grammar's longest sentence fits anyway).

    response_format   tool_choice       grammar                              answer
    text              none / no tools   (none)                               text
    json_*            none / no tools   the schema                           JSON text
    text or json_*    auto              call blocks | text (not "<"...) or JSON   either
    any               required          1..n call blocks (prefill: the call head)  tool calls
    any               {function: f}     f's arguments (prefill: up to them)        one tool call
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from nanoserve.api.openai.protocol import ResponseFormat
from nanoserve.errors import BadRequest, UnsupportedFeature
from nanoserve.worker.grammar import ANY_CHAR, ROOT, Chars, Cost, Element, Grammar, Repeat
from nanoserve.worker.structured import Bounds, SchemaBuilder
from nanoserve.worker.tools import (
    MAX_PARALLEL_CALLS,
    CallArgs,
    CallReader,
    CallStart,
    ToolCall,
    ToolChoice,
    ToolDef,
    ToolFormat,
    call_grammar,
)

log = logging.getLogger("nanoserve.worker")

OutputEvent = str | CallStart | CallArgs  # str: content text


@dataclass(slots=True)
class OutputPlan:
    grammar: Grammar | None = None
    prefill: str = ""
    fmt: ToolFormat | None = None  # set when the answer may hold tool calls
    calls_only: bool = False  # required or named: the answer is tool calls
    structured: bool = False  # a JSON answer (response_format json_*)
    reserve: int = 0  # tokens kept back from max_tokens to close the structure

    @property
    def plain(self) -> bool:
        return self.grammar is None and self.fmt is None

    def fit(self, max_tokens: int, tokens: Cost) -> int:
        """The engine's max_tokens once the closing reserve is kept back (400 if nothing is left).

        ``tokens`` counts the tokens of a text: the reserve is the most tokens a closing can take."""
        grammar = self.grammar
        if grammar is None:
            return max_tokens
        longest = grammar.max_bytes()  # every sampled token carries at least one byte
        self.reserve = 0 if longest is not None and longest <= max_tokens else grammar.close_bound(tokens)
        if max_tokens - self.reserve < 1:
            raise BadRequest(
                f"max_tokens={max_tokens} is too small for this structured answer: at least "
                f"{self.reserve + 1} are needed to guarantee it is complete",
                param="max_tokens",
            )
        return max_tokens - self.reserve


def plan_output(
    response_format: ResponseFormat | None,
    tools: list[ToolDef],
    choice: ToolChoice,
    *,
    fmt: ToolFormat,
    can_constrain: bool,
    parallel_calls: bool | None,
    bounds: Bounds,
) -> OutputPlan:
    kind = response_format.type if response_format is not None else "text"
    wants_calls = bool(tools) and choice != "none"
    if not can_constrain and (kind != "text" or wants_calls):
        what = "tools are" if wants_calls else f"response_format {kind!r} is"
        raise UnsupportedFeature(
            f"{what} not supported by this model's engine: it cannot constrain its output",
            param="tools" if wants_calls else "response_format",
        )
    if kind == "text" and not wants_calls:
        return OutputPlan()
    g = Grammar()
    answer = _answer_element(g, response_format, bounds) if kind != "text" else None
    if not wants_calls:
        assert answer is not None
        g.rule(ROOT, [answer])
        return OutputPlan(grammar=g, structured=True)
    max_calls = MAX_PARALLEL_CALLS if parallel_calls else 1  # small models repeat calls: opt in
    calls = call_grammar(g, tools, choice, fmt, max_calls=max_calls, bounds=bounds)
    if choice != "auto":
        g.rule(ROOT, [calls.element])
        return OutputPlan(grammar=g, prefill=calls.prefill, fmt=fmt, calls_only=True)
    if answer is None:  # free text that does not start like a call block
        first = Chars(((ord(fmt.call_open[0]), ord(fmt.call_open[0])),), negated=True)
        answer = g.rule("text", [first, Repeat(ANY_CHAR, 0, None)])
    g.rule(ROOT, [calls.element], [answer])
    return OutputPlan(grammar=g, fmt=fmt, structured=kind != "text")


def _answer_element(g: Grammar, response_format: ResponseFormat | None, bounds: Bounds) -> Element:
    assert response_format is not None
    builder_root: Any = {}
    if response_format.type == "json_schema":
        spec = response_format.json_schema
        if not isinstance(spec, dict) or "schema" not in spec:
            raise BadRequest(
                "response_format json_schema needs json_schema.schema (a JSON schema object)",
                param="response_format.json_schema",
            )
        builder_root = spec["schema"]
        where = "response_format.json_schema.schema"
        builder = SchemaBuilder(g, builder_root, where=where, bounds=bounds)
        return builder.value(builder_root, "#")
    builder = SchemaBuilder(g, builder_root, where="response_format", bounds=bounds)
    return builder.free_object(bounds.depth)


@dataclass
class Answer:
    """A finished answer, read back."""

    content: str | None
    tool_calls: list[ToolCall]
    finish_reason: str
    closing: str = ""  # text the server appended to close the structure

    def openai_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [c.openai() for c in self.tool_calls]
        return message


@dataclass
class OutputReader:
    """Follows the generated text of one answer: ``feed`` per token, ``finish`` once."""

    plan: OutputPlan
    text: str = ""  # the generated text (after the prefill)
    content: list[str] = field(default_factory=list)
    mode: Literal["undecided", "text", "calls"] = "undecided"
    _calls: CallReader | None = None
    _pending: list[OutputEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.plan.fmt is not None:
            self._calls = CallReader(self.plan.fmt)
        if self.plan.calls_only:
            self.mode = "calls"
            self._pending = list(self._calls_feed(self.plan.prefill))
        elif self.plan.fmt is None:
            self.mode = "text"

    def _calls_feed(self, text: str) -> list[OutputEvent]:
        assert self._calls is not None
        return list(self._calls.feed(text))

    def feed(self, text: str) -> list[OutputEvent]:
        events, self._pending = self._pending, []
        if not text:
            return events
        self.text += text
        if self.mode == "undecided":
            assert self.plan.fmt is not None
            self.mode = "calls" if self.text[0] == self.plan.fmt.call_open[0] else "text"
            text = self.text
        if self.mode == "calls":
            events += self._calls_feed(text)
        else:
            self.content.append(text)
            events.append(text)
        return events

    def finish(self, engine_reason: str, *, stopped_by_eog: bool) -> tuple[list[OutputEvent], Answer]:
        """Close an unfinished structure; the last events and the whole answer."""
        events, self._pending = self._pending, []
        closing = ""
        free_text = self.mode == "text" and not self.plan.structured
        if self.plan.grammar is not None and not stopped_by_eog and not free_text:
            closing = self._closing()
            if closing:
                events += self.feed(closing)
        calls = self._calls.calls if self._calls is not None and self.mode == "calls" else []
        if calls:
            reason = "tool_calls"
        elif self.plan.structured or closing:
            reason = "stop"
        else:
            reason = engine_reason
        content = None if calls else "".join(self.content)
        return events, Answer(content, calls, reason, closing)

    def _closing(self) -> str:
        assert self.plan.grammar is not None
        matcher = self.plan.grammar.matcher()
        if not matcher.feed(self.text):
            log.error("generated text left its grammar; returned as is: %r", self.text[-200:])
            return ""
        return "" if matcher.accepted else matcher.completion()
