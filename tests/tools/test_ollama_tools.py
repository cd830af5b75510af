"""Ollama's ``format`` and ``tools`` end to end: real gateway, real SmolLM2, official ``ollama`` client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import ollama
import pytest
from gateway import Gateway

MODEL = "smollm2:135m"
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3},
    },
    "required": ["name", "age", "hobbies"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
        },
    },
}
OPTIONS = {"temperature": 0, "num_predict": 80}


@pytest.fixture(scope="module")
def client(real_gateway: Gateway) -> ollama.Client:
    return ollama.Client(host=real_gateway.url, timeout=300)


def test_format_schema(client: ollama.Client) -> None:
    resp = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a pirate."}],
        format=SCHEMA,
        options=OPTIONS,
    )
    jsonschema.validate(json.loads(resp.message.content or ""), SCHEMA)
    assert resp.done and resp.done_reason == "stop"
    parts = list(
        client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Describe a knight."}],
            format=SCHEMA,
            options=OPTIONS,
            stream=True,
        )
    )
    jsonschema.validate(json.loads("".join(p.message.content or "" for p in parts)), SCHEMA)
    assert parts[-1].done


def test_format_json_on_generate(client: ollama.Client) -> None:
    resp = client.generate(model=MODEL, prompt="List two colors as JSON.", format="json", options=OPTIONS)
    assert isinstance(json.loads(resp.response), dict)


def _calls(parts: list[Any]) -> list[Any]:
    return [c for p in parts for c in (p.message.tool_calls or [])]


# One earlier exchange shows the 135M model what a call looks like: with it, it calls the tool
# by itself (Ollama has no tool_choice: every request with tools is "auto").
SHOT: list[Any] = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    },
    {"role": "tool", "content": "18C", "tool_name": "get_weather"},
    {"role": "assistant", "content": "It is 18C in Paris."},
]


def test_tools(client: ollama.Client) -> None:
    messages: list[Any] = [*SHOT, {"role": "user", "content": "Weather in Oslo?"}]
    resp = client.chat(model=MODEL, messages=messages, tools=[WEATHER], options=OPTIONS)
    calls = resp.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather"]
    jsonschema.validate(dict(calls[0].function.arguments), WEATHER["function"]["parameters"])
    assert resp.done_reason == "stop"
    streamed = list(
        client.chat(model=MODEL, messages=messages, tools=[WEATHER], options=OPTIONS, stream=True)
    )
    assert [(c.function.name, dict(c.function.arguments)) for c in _calls(streamed)] == [
        (c.function.name, dict(c.function.arguments)) for c in calls
    ]
    assert streamed[-1].done and streamed[-1].done_reason == "stop"
    # the call and its result go back in the next turn
    messages += [
        resp.message,
        {"role": "tool", "content": "It is 4 degrees and snowing.", "tool_name": "get_weather"},
    ]
    again = client.chat(model=MODEL, messages=messages, tools=[WEATHER], options=OPTIONS)
    assert again.message.content or again.message.tool_calls


def test_tool_calls_in_ollama_shape(real_gateway: Gateway) -> None:
    """Raw lines: arguments are objects, each call has an id and an index, as Ollama sends them."""
    body = {
        "model": MODEL,
        "messages": [*SHOT, {"role": "user", "content": "And in Rome?"}],
        "tools": [WEATHER],
        "options": OPTIONS,
    }
    with httpx.Client(base_url=real_gateway.url, timeout=300) as http:
        whole = http.post("/api/chat", json={**body, "stream": False}).json()
        lines = [json.loads(line) for line in http.post("/api/chat", json=body).text.splitlines()]
    call = whole["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["function"]["index"] == 0
    assert call["function"]["name"] == "get_weather" and isinstance(call["function"]["arguments"], dict)
    assert whole["message"]["content"] == "" and whole["done_reason"] == "stop"
    with_calls = [line for line in lines if line.get("message", {}).get("tool_calls")]
    assert len(with_calls) == 1 and not with_calls[0]["done"]
    assert with_calls[0]["message"]["tool_calls"][0]["function"]["arguments"] == call["function"]["arguments"]
    assert lines[-1]["done"] and lines[-1]["done_reason"] == "stop"
