"""Tools and structured output end to end: real gateway, real SmolLM2 worker, official ``openai`` client."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from gateway import Gateway

MODEL = "smollm2:135m"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current local time in an IANA timezone",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "maxLength": 40}},
            "required": ["timezone"],
        },
    },
}
TOOLS: list[Any] = [WEATHER, TIME]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
USER = {"role": "user", "content": "What is the weather like in Paris right now?"}


@pytest.fixture(scope="module")
def client(real_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=real_gateway.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def _check_calls(calls: Any) -> None:
    assert calls
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        jsonschema.validate(json.loads(call.function.arguments), PARAMS[call.function.name])


def test_named_function_is_called(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        temperature=0,
        max_tokens=64,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    _check_calls(calls)
    assert [c.function.name for c in calls or []] == ["get_time"]
    assert resp.usage is not None and resp.usage.completion_tokens > 0


def test_required_call_streams_in_openai_shape(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[USER],
        tools=TOOLS,
        tool_choice="required",
        temperature=0,
        max_tokens=64,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant" and deltas[0].content is None
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    first = calls[0]
    assert first.index == 0 and first.id and first.type == "function" and first.function.name in PARAMS
    assert first.function.arguments == ""
    assert all(tc.id is None and tc.function.name is None for tc in calls[1:])  # then argument pieces
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.index == 0)
    jsonschema.validate(json.loads(arguments), PARAMS[first.function.name])
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_auto_gives_text_or_a_valid_call(client: openai.OpenAI) -> None:
    for content in ("Hi! How are you today?", "Call get_weather for Berlin."):
        resp = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": content}], tools=TOOLS, temperature=0, max_tokens=48
        )
        choice = resp.choices[0]
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls" and choice.message.content is None
            _check_calls(choice.message.tool_calls)
        else:
            assert choice.message.content and not choice.message.content.startswith("<")
            assert choice.finish_reason in ("stop", "length")


def test_tool_results_feed_the_next_turn(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model=MODEL, messages=[USER], tools=TOOLS, tool_choice="required", temperature=0, max_tokens=64
    )
    message = first.choices[0].message
    calls = message.tool_calls or []
    history: list[Any] = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
        *({"role": "tool", "tool_call_id": c.id, "content": "18 degrees and sunny"} for c in calls),
    ]
    second = client.chat.completions.create(
        model=MODEL, messages=history, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=48
    )
    answer = second.choices[0].message
    assert answer.tool_calls is None and answer.content
    streamed = client.chat.completions.create(
        model=MODEL, messages=history, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=48, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == answer.content


class City(BaseModel):
    name: str = Field(max_length=40)
    country: str = Field(max_length=40)
    population_millions: float = Field(ge=0, le=100)
    landmarks: list[str] = Field(max_length=3)


def test_json_schema_with_the_sdk_parse_helper(client: openai.OpenAI) -> None:
    resp = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format=City,
        temperature=0,
        max_tokens=96,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, City)


def test_json_schema_streaming_and_json_object(client: openai.OpenAI) -> None:
    schema = City.model_json_schema()
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Rome."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
        temperature=0,
        max_tokens=96,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    jsonschema.validate(json.loads(text), schema)
    obj = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "List three fruits as JSON."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=64,
    )
    assert isinstance(json.loads(obj.choices[0].message.content or ""), dict)


def test_cut_off_answer_is_closed_by_the_server(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"story": {"type": "string", "maxLength": 500}}, "required": ["story"]}
    resp = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Tell a long story about a dragon."}],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        temperature=0,
        max_tokens=24,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.model_extra is not None and choice.model_extra.get("closed_by_server") is True
    jsonschema.validate(json.loads(choice.message.content or ""), schema)
    assert resp.usage is not None and resp.usage.completion_tokens <= 24


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "^a"}}}},
            "'pattern'",
        ),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not in 'tools'"),
        ({"tools": TOOLS, "tool_choice": "required", "max_tokens": 3}, "max_tokens=3 is too small"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
            "does not support image input",
        ),
    ],
)
def test_clear_400s(client: openai.OpenAI, kwargs: dict[str, Any], words: str) -> None:
    body: dict[str, Any] = {"model": MODEL, "messages": [USER], "max_tokens": 16, **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**body)
    assert words in str(info.value)
