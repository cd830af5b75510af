"""Output plans (which grammar, prefill, reserve) and reading answers back, cut-offs included."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest
from sentences import sentence

from nanoserve.errors import BadRequest, UnsupportedFeature
from nanoserve.wire.protocol import ResponseFormat
from nanoserve.worker.output import OutputPlan, OutputReader, plan_output
from nanoserve.worker.structured import Bounds
from nanoserve.worker.tools import TOOL_FORMATS, CallArgs, CallStart, parse_tools

HERMES = TOOL_FORMATS["hermes"]
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
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


def plan(
    fmt: ResponseFormat | None = None, choice: str = "none", *, tools: Any = TOOLS, **kw: Any
) -> OutputPlan:
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
    ("fmt", "choice", "grammar", "calls_only", "structured", "decide_first"),
    [
        (None, "none", False, False, False, False),
        (ResponseFormat(type="text"), "none", False, False, False, False),
        (JSON_OBJECT, "none", True, False, True, False),
        (JSON_SCHEMA, "none", True, False, True, False),
        (None, "auto", True, False, False, True),
        (JSON_SCHEMA, "auto", True, False, True, True),
        (None, "required", True, True, False, False),
        (None, "lookup", True, True, False, False),
    ],
)
def test_plans(
    fmt: ResponseFormat | None,
    choice: str,
    grammar: bool,
    calls_only: bool,
    structured: bool,
    decide_first: bool,
) -> None:
    p = plan(fmt, choice)
    assert (p.grammar is not None, p.calls_only, p.structured, p.decide_first) == (
        grammar, calls_only, structured, decide_first
    )  # fmt: skip
    assert p.plain == (not grammar)


@pytest.mark.parametrize(
    ("fmt", "choice"), [(JSON_OBJECT, "none"), (JSON_SCHEMA, "none"), (None, "auto"), (None, "required")]
)
def test_engines_that_cannot_constrain_refuse(fmt: ResponseFormat | None, choice: str) -> None:
    with pytest.raises(UnsupportedFeature, match="not supported by this model's engine"):
        plan(fmt, choice, can_constrain=False)
    assert plan(None, "none", can_constrain=False).plain


def test_json_schema_needs_a_schema() -> None:
    with pytest.raises(BadRequest, match="json_schema.schema"):
        plan(ResponseFormat(type="json_schema", json_schema={"name": "x"}))


def test_forced_text_is_prefilled() -> None:
    step = plan(JSON_SCHEMA).first_step(200, len)
    assert step.prefill == '{"name": "'
    assert step.grammar is not None and step.grammar.matcher().feed('Ada", "tags": []}')
    assert step.max_tokens == 200 - len(step.prefill) - step.reserve and step.reserve > 0
    named = plan(None, "lookup").first_step(200, len)
    assert named.prefill == '<tool_call>\n{"name": "lookup", "arguments": {"q": "'
    constant = plan(
        ResponseFormat(type="json_schema", json_schema={"schema": {"const": {"a": [1]}}})
    ).first_step(5, len)
    assert (constant.prefill, constant.grammar, constant.max_tokens, constant.complete) == (
        '{"a": [1]}',
        None,
        0,
        True,
    )


def test_no_reserve_when_the_grammar_fits() -> None:
    tiny = plan(ResponseFormat(type="json_schema", json_schema={"schema": {"enum": ["yes", "no"]}}))
    step = tiny.first_step(8, len)
    assert step.prefill == '"' and step.reserve == 0 and step.max_tokens == 7


def test_auto_decides_with_one_token_then_runs_the_branch() -> None:
    p = plan(None, "auto")
    first = p.first_step(100, len)
    assert (first.prefill, first.max_tokens) == ("", 1)
    call = p.next_step("<", "calls", 99, len)
    assert (
        call.prefill == 'tool_call>\n{"name": "lookup", "arguments": {"q": "'
    )  # one tool: its name is forced
    assert call.grammar is not None and 0 < call.max_tokens < 99 - len(call.prefill)
    text = p.next_step("Hi", "text", 99, len)
    assert (text.prefill, text.grammar, text.max_tokens) == ("", None, 99)
    both = plan(JSON_SCHEMA, "auto").next_step("{", "text", 99, len)
    assert both.prefill == '"name": "' and both.grammar is not None


def test_budget_check() -> None:
    def tokens(text: str) -> int:  # about four characters a token
        return max(1, len(text) // 4)

    p = plan(JSON_SCHEMA)
    p.check(30, tokens)
    with pytest.raises(BadRequest) as info:
        p.check(8, tokens)
    assert info.value.param == "max_tokens" and "too small for this structured answer" in info.value.message
    with pytest.raises(BadRequest, match="too small for a tool call"):
        plan(None, "auto").check(12, tokens)
    plan(None, "auto").check(40, tokens)


def _run(p: OutputPlan, pieces: list[str], reason: str, eog: bool) -> tuple[list[Any], Any]:
    reader = OutputReader(p)
    events: list[Any] = []
    for piece in pieces:
        events += reader.feed(piece)
    tail, answer = reader.finish(reason, complete=eog)
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
    assert (
        answer.content == '{"name": "x", "tags": []}'
        and answer.closing == ""
        and answer.finish_reason == "stop"
    )
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
    head = '<tool_call>\n{"name": "lookup", "arguments": '
    events, answer = _run(p, [head, '{"q": "a very long que'], "length", eog=False)
    assert answer.finish_reason == "tool_calls" and answer.closing == '"}}\n</tool_call>'
    assert json.loads(answer.tool_calls[0].arguments) == {"q": "a very long que"}
    assert isinstance(events[0], CallStart) and events[0].name == "lookup"


def test_a_stop_sequence_inside_json_is_closed() -> None:
    p = plan(JSON_SCHEMA)
    _, answer = _run(p, ['{"name": "a'], "stop", eog=False)  # a stop sequence ended it, not EOG
    assert answer.content == '{"name": "a", "tags": []}'


def test_random_answers_cut_anywhere_always_parse() -> None:
    p = plan(None, "required")
    assert p.grammar is not None
    rng = random.Random(5)
    for _ in range(20):
        text = sentence(p.grammar, rng)
        cut = rng.randint(0, len(text))
        _, answer = _run(p, [text[:cut]], "length", eog=False)
        assert answer.finish_reason == "tool_calls"
        for call in answer.tool_calls:
            assert json.loads(call.arguments)["q"] is not None
