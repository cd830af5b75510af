"""What a chat answer may be (text, JSON, tool calls), in which steps it is generated, and how its
text is read back.

``plan_output`` turns ``response_format``, ``tools`` and ``tool_choice`` into an ``OutputPlan``:

    response_format   tool_choice       the answer's grammar                 answer
    text              none / no tools   (none)                               text
    json_*            none / no tools   the schema                           JSON text
    text or json_*    auto              call blocks | text not starting "<"  either
                                          (or | the schema)
    any               required          1..n call blocks                     tool calls
    any               {function: f}     one call of f                        one tool call

An answer is generated in ``Step``s. A step puts what the grammar forces next (the ``prefill``:
``{"name": "`` of a schema, a call block's head, a named function's name) into the prompt
instead of sampling it, gives the engine the grammar of what may follow, and keeps a
``reserve`` of tokens back from the budget: enough to close any structure the engine leaves
unfinished from any point of the step (nothing is reserved when the grammar's longest sentence
fits the budget anyway). A step that uses up its tokens is followed by another, planned from
where the text stands: its reserve covers only what can still follow, which is usually far less,
so the model gets almost the whole budget and the answer still always closes within it. ``auto``
starts with a one-token step that decides between a call and an answer; the chosen branch then
runs with its own grammar and reserve (free text runs unconstrained).

``OutputReader`` follows the answer's text and turns it into content and tool-call events; at the
end it closes a structure left unfinished (cut off by the budget or a stop sequence): the
grammar's shortest completion of what was written is appended, so the answer still parses and
validates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from nanoserve.errors import BadRequest, UnsupportedFeature
from nanoserve.wire.protocol import ResponseFormat
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
class Step:
    """One engine request of an answer."""

    prefill: str  # forced text: goes into the prompt and is part of the answer
    grammar: Grammar | None  # what the engine samples under, after the prefill
    max_tokens: int  # for the engine; 0: nothing is left to sample
    reserve: int = 0  # tokens kept back to close the structure
    complete: bool = False  # the prefill completes the answer


@dataclass(slots=True)
class OutputPlan:
    grammar: Grammar | None = None  # the whole answer
    fmt: ToolFormat | None = None  # set when the answer may hold tool calls
    calls_only: bool = False  # required or named: the answer is tool calls
    structured: bool = False  # a JSON answer (response_format json_*)
    # auto: one token decides; then the branch's grammar ("calls", and "answer": None = free text)
    branches: dict[str, Grammar | None] = field(default_factory=dict)
    _steps: dict[tuple[int, str, int], Step] = field(default_factory=dict, repr=False)

    @property
    def plain(self) -> bool:
        return self.grammar is None and self.fmt is None

    @property
    def decide_first(self) -> bool:
        return bool(self.branches)

    def first_step(self, budget: int, tokens: Cost) -> Step:
        if self.grammar is None:
            return Step("", None, budget)
        if self.decide_first:
            forced = self.grammar.forced_prefix()
            return Step(forced, self.grammar.advanced(forced), 1)
        return self._step(self.grammar, "", budget, tokens)

    def next_step(self, written: str, mode: str, budget: int, tokens: Cost) -> Step:
        """The step after one that used up its tokens (``auto``'s deciding token, or a step cut
        short by its reserve): planned from what is ``written`` so far, with ``budget`` left, so
        its reserve covers only what can still follow."""
        grammar = self.grammar
        if self.decide_first:
            grammar = self.branches["calls" if mode == "calls" else "answer"]
        if grammar is None:
            return Step("", None, budget)
        return self._step(grammar, written, budget, tokens)

    def _step(self, grammar: Grammar, written: str, budget: int, tokens: Cost) -> Step:
        key = (id(grammar), written, budget)  # check() and the first step plan the same thing
        if key not in self._steps:
            self._steps[key] = _step(grammar, written, budget, tokens)
        return self._steps[key]

    def check(self, max_tokens: int, tokens: Cost) -> None:
        """400 unless ``max_tokens`` leaves room to generate a complete answer."""
        if self.decide_first:
            steps = [
                (f"a {name}", self._step(g, "", max_tokens - 1, tokens))
                for name, g in (
                    ("tool call", self.branches["calls"]),
                    ("JSON answer", self.branches["answer"]),
                )
                if g is not None
            ]
        else:
            steps = [("this structured answer", self.first_step(max_tokens, tokens))]
        for what, step in steps:
            if step.max_tokens < 1 and step.grammar is not None:
                needed = max_tokens - step.max_tokens + 1
                raise BadRequest(
                    f"max_tokens={max_tokens} is too small for {what}: at least {needed} are needed "
                    "to guarantee it is complete",
                    param="max_tokens",
                )


def _step(grammar: Grammar, written: str, budget: int, tokens: Cost) -> Step:
    rest = grammar.advanced(written)
    forced = rest.forced_prefix()
    rest = rest.advanced(forced)
    left = budget - (tokens(forced) if forced else 0)
    if rest.matcher().stacks == {()}:  # the prefill completes the answer
        return Step(forced, None, 0, complete=True)
    longest = rest.max_bytes()  # every sampled token carries at least one byte
    reserve = 0 if longest is not None and longest <= left else rest.close_bound(tokens)
    return Step(forced, rest, left - reserve, reserve)


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

    def grammar_of(build: Any) -> tuple[Grammar, Element]:
        g = Grammar()
        element = build(g)
        g.rule(ROOT, [element])
        return g, element

    def answer(g: Grammar) -> Element:
        return _answer_element(g, response_format, bounds)

    max_calls = MAX_PARALLEL_CALLS if parallel_calls else 1  # small models repeat calls: opt in

    def calls(g: Grammar) -> Element:
        return call_grammar(g, tools, choice, fmt, max_calls=max_calls, bounds=bounds)

    if not wants_calls:
        return OutputPlan(grammar=grammar_of(answer)[0], structured=True)
    if choice != "auto":
        return OutputPlan(grammar=grammar_of(calls)[0], fmt=fmt, calls_only=True)
    calls_grammar, _ = grammar_of(calls)
    answer_grammar = grammar_of(answer)[0] if kind != "text" else None
    union = Grammar()
    call_element = calls(union)
    other: Element
    if answer_grammar is None:  # free text that does not start like a call block
        first = Chars(((ord(fmt.call_open[0]), ord(fmt.call_open[0])),), negated=True)
        other = union.rule("text", [first, Repeat(ANY_CHAR, 0, None)])
    else:
        other = answer(union)
    union.rule(ROOT, [call_element], [other])
    return OutputPlan(
        grammar=union,
        fmt=fmt,
        structured=kind != "text",
        branches={"calls": calls_grammar, "answer": answer_grammar},
    )


def _answer_element(g: Grammar, response_format: ResponseFormat | None, bounds: Bounds) -> Element:
    assert response_format is not None
    if response_format.type == "json_schema":
        spec = response_format.json_schema
        if not isinstance(spec, dict) or "schema" not in spec:
            raise BadRequest(
                "response_format json_schema needs json_schema.schema (a JSON schema object)",
                param="response_format.json_schema",
            )
        where = "response_format.json_schema.schema"
        return SchemaBuilder(g, spec["schema"], where=where, bounds=bounds).value(spec["schema"], "#")
    return SchemaBuilder(g, {}, where="response_format", bounds=bounds).free_object(bounds.depth)


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
    """Follows the text of one answer (prefills and generated text): ``feed``, then ``finish``."""

    plan: OutputPlan
    text: str = ""
    content: list[str] = field(default_factory=list)
    mode: Literal["undecided", "text", "calls"] = "undecided"
    _calls: CallReader | None = None

    def __post_init__(self) -> None:
        if self.plan.fmt is not None:
            self._calls = CallReader(self.plan.fmt)
        if self.plan.calls_only:
            self.mode = "calls"
        elif self.plan.fmt is None:
            self.mode = "text"

    @property
    def free_text(self) -> bool:
        """Unconstrained text from here on (auto mode's text answer)."""
        return self.mode == "text" and not self.plan.structured

    def feed(self, text: str) -> list[OutputEvent]:
        if not text:
            return []
        self.text += text
        if self.mode == "undecided":
            assert self.plan.fmt is not None
            self.mode = "calls" if self.text[0] == self.plan.fmt.call_open[0] else "text"
            text = self.text
        if self.mode == "calls":
            assert self._calls is not None
            return list(self._calls.feed(text))
        self.content.append(text)
        return [text]

    def finish(self, engine_reason: str, *, complete: bool) -> tuple[list[OutputEvent], Answer]:
        """Close an unfinished structure (unless the engine ended on a ``complete`` sentence);
        the last events and the whole answer."""
        events: list[OutputEvent] = []
        closing = ""
        if self.plan.grammar is not None and not complete and not self.free_text:
            closing = self._closing()
            if closing:
                events = self.feed(closing)
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
