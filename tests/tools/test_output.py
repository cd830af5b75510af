"""Output plans (which grammar, prefill, reserve) and reading answers back, cut-offs included."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest
from sentences import sentence

from nanoserve.api.openai.protocol import ResponseFormat
from nanoserve.errors import BadRequest, UnsupportedFeature
from nanoserve.worker.output import OutputPlan, OutputReader, plan_output
from nanoserve.worker.structured import Bounds
from nanoserve.worker.tools import TOOL_FORMATS, CallArgs, CallStart, parse_tools

HERMES = TOOL_FORMATS["hermes"]
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 30}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "tags"],
}
JSON_SCHEMA = ResponseFormat(type="json_schema", json_schema={"name": "x", "schema": SCHEMA, "strict": True})
JSON_OBJECT = ResponseFormat(type="json_object")
TOOLS = parse_tools(
    [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
            },
        }
    ]
)


def plan(fmt: ResponseFormat | None = None, choice: str = "none", *, tools: Any = TOOLS, **kw: Any) -> OutputPlan:
    return plan_output(
        fmt,
        tools if choice != "none" else [],
        choice,
        fmt=HERMES,
        can_constrain=kw.pop("can_constrain", True),
        parallel_calls=kw.pop("parallel_calls", None),
        bounds=Bounds(),
    )


@pytest.mark.parametrize(
    ("fmt", "choice", "grammar", "prefill", "calls_only", "structured"),
    [
        (None, "none", False, "", False, False),
        (ResponseFormat(type="text"), "none", False, "", False, False),
        (JSON_OBJECT, "none", True, "", False, True),
        (JSON_SCHEMA, "none", True, "", False, True),
        (None, "auto", True, "", False, False),
        (JSON_SCHEMA, "auto", True, "", False, True),
        (None, "required", True, '<tool_call>\n{"name": ', True, False),
        (None, "lookup", True, '<tool_call>\n{"name": "lookup", "arguments": ', True, False),
    ],
)
def test_plans(
    fmt: ResponseFormat | None, choice: str, grammar: bool, prefill: str, calls_only: bool, structured: bool
) -> None:
    p = plan(fmt, choice)
    assert (p.grammar is not None, p.prefill, p.calls_only, p.structured) == (grammar, prefill, calls_only, structured)
    assert p.plain == (not grammar)
    if p.grammar is not None:
        assert p.grammar.gbnf().startswith("root ::= ")


@pytest.mark.parametrize(("fmt", "choice"), [(JSON_OBJECT, "none"), (JSON_SCHEMA, "none"), (None, "auto"), (None, "required")])
def test_engines_that_cannot_constrain_refuse(fmt: ResponseFormat | None, choice: str) -> None:
    with pytest.raises(UnsupportedFeature, match="not supported by this model's engine"):
        plan(fmt, choice, can_constrain=False)
    assert plan(None, "none", can_constrain=False).plain


def test_json_schema_needs_a_schema() -> None:
    with pytest.raises(BadRequest, match="json_schema.schema"):
        plan(ResponseFormat(type="json_schema", json_schema={"name": "x"}))


def test_reserve_only_when_the_grammar_may_not_fit() -> None:
    tiny = plan(ResponseFormat(type="json_schema", json_schema={"schema": {"enum": ["yes", "no"]}}))
    assert tiny.fit(8, len) == 8 and tiny.reserve == 0
    p = plan(JSON_SCHEMA)
    assert p.fit(200, len) == 200 - p.reserve and p.reserve > 0
    with pytest.raises(BadRequest) as info:
        p.fit(p.reserve, len)
    assert info.value.param == "max_tokens" and str(p.reserve + 1) in info.value.message


def _run(p: OutputPlan, pieces: list[str], reason: str, eog: bool) -> tuple[list[Any], Any]:
    reader = OutputReader(p)
    events: list[Any] = []
    for piece in pieces:
        events += reader.feed(piece)
    tail, answer = reader.finish(reason, stopped_by_eog=eog)
    return events + tail, answer


def test_cut_off_json_is_closed_and_validates() -> None:
    p = plan(JSON_SCHEMA)
    doc = '{"name": "Ada Lovelace", "tags": ["math", "poetry"]}'
    for cut in range(len(doc)):
        events, answer = _run(p, [doc[:cut]], "length", eog=False)
        assert answer.finish_reason == "stop"
        assert answer.content == doc[:cut] + answer.closing == "".join(events)
        jsonschema.validate(json.loads(answer.content), SCHEMA)
    events, answer = _run(p, [doc], "length", eog=False)  # complete exactly at max_tokens
    assert answer.closing == "" and answer.finish_reason == "stop"


def test_finished_answers_are_not_touched() -> None:
    events, answer = _run(plan(JSON_SCHEMA), ['{"name": "x", ', '"tags": []}'], "stop", eog=True)
    assert answer.content == '{"name": "x", "tags": []}' and answer.closing == "" and answer.finish_reason == "stop"
    events, answer = _run(plan(None, "auto"), ["Hello", " there"], "length", eog=False)
    assert answer.content == "Hello there" and answer.finish_reason == "length" and answer.closing == ""
    assert events == ["Hello", " there"]


def test_auto_reads_a_call_or_text() -> None:
    p = plan(None, "auto")
    text = '<tool_call>\n{"name": "lookup", "arguments": {"q": "cats"}}\n</tool_call>'
    events, answer = _run(p, [text[:5], text[5:30], text[30:]], "stop", eog=True)
    assert answer.finish_reason == "tool_calls" and answer.content is None
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("lookup", '{"q": "cats"}')]
    assert isinstance(events[0], CallStart) and all(isinstance(e, CallArgs) for e in events[1:])
    message = answer.openai_message()
    assert message["content"] is None and message["tool_calls"][0]["function"]["name"] == "lookup"


def test_forced_call_cut_off_is_closed() -> None:
    p = plan(None, "lookup")
    events, answer = _run(p, ['{"q": "a very long que'], "length", eog=False)
    assert answer.finish_reason == "tool_calls" and answer.closing == '"}}\n</tool_call>'
    assert json.loads(answer.tool_calls[0].arguments) == {"q": "a very long que"}
    assert isinstance(events[0], CallStart) and events[0].name == "lookup"


def test_a_stop_sequence_inside_json_is_closed() -> None:
    p = plan(JSON_SCHEMA)
    _, answer = _run(p, ['{"name": "a'], "stop", eog=False)  # a stop sequence ended it, not EOG
    assert answer.content == '{"name": "a", "tags": []}'


def test_random_answers_cut_anywhere_always_parse() -> None:
    p = plan(JSON_SCHEMA, "required")
    assert p.grammar is not None
    rng = random.Random(5)
    for _ in range(20):
        text = sentence(p.grammar, rng)
        cut = rng.randint(0, len(text))
        _, answer = _run(p, [text[:cut]], "length", eog=False)
        assert answer.finish_reason == "tool_calls"
        for call in answer.tool_calls:
            assert json.loads(call.arguments)["q"] is not None
