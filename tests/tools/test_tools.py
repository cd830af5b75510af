"""The hermes tool format: definitions, rendering, call grammars and reading calls back."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest
from sentences import sentence

from nanoserve.engines.llamacpp.chat import CHATML_TEMPLATE, ChatTemplate
from nanoserve.errors import BadRequest
from nanoserve.wire.protocol import ChatMessage
from nanoserve.worker.grammar import ROOT, Grammar
from nanoserve.worker.structured import Bounds
from nanoserve.worker.tools import (
    TOOL_FORMATS,
    CallArgs,
    CallReader,
    CallStart,
    call_grammar,
    parse_tool_choice,
    parse_tools,
    render_messages,
    template_tools,
)

HERMES = TOOL_FORMATS["hermes"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "number"},
                "b": {"type": "number"},
                "note": {"type": ["string", "null"]},
            },
            "required": ["a", "b"],
        },
    },
}
NO_PARAMS = {"type": "function", "function": {"name": "ping"}}
TOOLS = parse_tools([WEATHER, ADD, NO_PARAMS])
SCHEMAS = {t.name: t.parameters for t in TOOLS}


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "function", "function": {"name": "bad name"}}], "tools.0.function.name"),
        ([{"type": "function"}], "tools.0.function"),
        ([{"type": "retrieval", "function": {"name": "x"}}], "tools.0.type"),
        ([WEATHER, WEATHER], "tools"),
        (
            [{"type": "function", "function": {"name": "s", "parameters": {"type": "string"}}}],
            "tools.0.function.parameters",
        ),
    ],
)
def test_bad_tool_definitions(tools: list[dict[str, Any]], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_tools(tools)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("raw", "tools", "expected"),
    [
        (None, TOOLS, "auto"),
        (None, [], "none"),
        ("none", TOOLS, "none"),
        ("required", TOOLS, "required"),
        ({"type": "function", "function": {"name": "add"}}, TOOLS, "add"),
    ],
)
def test_tool_choice(raw: Any, tools: Any, expected: str) -> None:
    assert parse_tool_choice(raw, tools) == expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("sometimes", "tool_choice"),
        ({"type": "function", "function": {"name": "nope"}}, "not in 'tools'"),
        ({"type": "function"}, "expected"),
    ],
)
def test_bad_tool_choice(raw: Any, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        parse_tool_choice(raw, TOOLS)
    with pytest.raises(BadRequest, match="needs 'tools'"):
        parse_tool_choice("required", [])


def _messages(raw: list[dict[str, Any]]) -> list[ChatMessage]:
    return [ChatMessage.model_validate(m) for m in raw]


CONVERSATION = [
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "18C, sunny"},
    {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "22C"}]},
]


def test_hermes_rendering_through_chatml() -> None:
    messages = render_messages(_messages(CONVERSATION), parse_tools([WEATHER]), HERMES)
    prompt = ChatTemplate(CHATML_TEMPLATE, bos_token="", eos_token="").render(messages)
    signature = json.dumps(WEATHER, ensure_ascii=False)
    assert prompt == (
        "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the "
        "user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{signature}\n</tools>\n\nFor each function call, return a json object with function "
        "name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>tool\n<tool_response>\n18C, sunny\n</tool_response>\n<tool_response>\n22C\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_no_tools_renders_plain_messages() -> None:
    plain = render_messages(
        _messages([{"role": "developer", "content": "x"}, {"role": "user", "content": "y"}]), [], HERMES
    )
    assert plain == [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]
    added = render_messages(_messages([{"role": "user", "content": "y"}]), parse_tools([NO_PARAMS]), HERMES)
    assert added[0]["role"] == "system" and "<tools>" in added[0]["content"]


def test_template_format_keeps_structure() -> None:
    fmt = TOOL_FORMATS["template"]
    messages = render_messages(_messages(CONVERSATION), parse_tools([WEATHER]), fmt)
    assert messages[2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert messages[3] == {"role": "tool", "content": "18C, sunny", "tool_call_id": "c1", "name": None}
    assert template_tools(parse_tools([WEATHER]), fmt) == [WEATHER]
    assert template_tools(parse_tools([WEATHER]), HERMES) is None


def test_bad_arguments_in_history() -> None:
    bad = [
        {"role": "assistant", "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{oops"}}]}
    ]
    with pytest.raises(BadRequest) as info:
        render_messages(_messages(bad), [], HERMES)
    assert info.value.param == "messages.0.tool_calls.0.function.arguments"


def _read(prefill: str, text: str, split: int | None = None) -> tuple[CallReader, list[Any]]:
    reader = CallReader(HERMES)
    events = reader.feed(prefill)
    if split is None:
        events += reader.feed(text)
    else:
        for i in range(0, len(text), split):
            events += reader.feed(text[i : i + split])
    return reader, events


@pytest.mark.parametrize("choice", ["required", "auto", "add", "get_weather", "ping"])
def test_call_grammar_sentences_read_back_as_valid_calls(choice: str) -> None:
    g = Grammar()
    g.rule(ROOT, [call_grammar(g, TOOLS, choice, HERMES, max_calls=3, bounds=Bounds(string_length=12))])
    rng = random.Random(choice)
    for _ in range(40):
        text = sentence(g, rng)
        reader, _ = _read("", text)
        assert reader.complete and reader.calls
        if choice not in ("required", "auto"):
            assert [c.name for c in reader.calls] == [choice]
        for call in reader.calls:
            jsonschema.validate(json.loads(call.arguments), SCHEMAS[call.name])
        # streamed one character at a time: the same calls, arguments in pieces
        _, streamed = _read("", text, split=1)
        starts = [e for e in streamed if isinstance(e, CallStart)]
        assert [s.name for s in starts] == [c.name for c in reader.calls]
        for i, call in enumerate(reader.calls):
            assert (
                "".join(e.text for e in streamed if isinstance(e, CallArgs) and e.index == i)
                == call.arguments
            )
        assert len({c.id for c in reader.calls}) == len(reader.calls)
        assert all(c.id.startswith("call_") for c in reader.calls)


def test_named_call_starts_as_soon_as_the_name_is_complete() -> None:
    g = Grammar()
    g.rule(ROOT, [call_grammar(g, TOOLS, "add", HERMES, max_calls=1, bounds=Bounds())])
    head = '<tool_call>\n{"name": "add", "arguments": '
    assert g.forced_prefix() == head + '{"a": '  # prefilled: the model starts with the value of "a"
    reader = CallReader(HERMES)
    events = reader.feed(head)
    assert [type(e) for e in events] == [CallStart] and events[0].name == "add"
    events = reader.feed('{"a": 1, "b": 2.5}}\n</tool_call>')
    assert events == [CallArgs(0, '{"a": 1, "b": 2.5}')] and reader.complete


def test_arguments_with_braces_inside_strings() -> None:
    reader, _ = _read(
        "", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "}\\"{]"}}\n</tool_call>'
    )
    assert reader.complete and json.loads(reader.calls[0].arguments) == {"city": '}"{]'}
