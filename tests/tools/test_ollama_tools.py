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
        model=MODEL, messages=[{"role": "user", "content": "Describe a pirate."}], format=SCHEMA, options=OPTIONS
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


def test_tools(client: ollama.Client) -> None:
    messages: list[Any] = [{"role": "user", "content": "Use get_weather to check the weather in Oslo."}]
    resp = client.chat(model=MODEL, messages=messages, tools=[WEATHER], options=OPTIONS)
    calls = resp.message.tool_calls or []
    if not calls:  # auto: the model may answer in text
        assert resp.message.content
        return
    call = calls[0]
    assert call.function.name == "get_weather"
    jsonschema.validate(dict(call.function.arguments), WEATHER["function"]["parameters"])
    streamed = list(client.chat(model=MODEL, messages=messages, tools=[WEATHER], options=OPTIONS, stream=True))
    assert [(c.function.name, dict(c.function.arguments)) for c in _calls(streamed)] == [
        (c.function.name, dict(c.function.arguments)) for c in calls
    ]
    assert streamed[-1].done and streamed[-1].done_reason == "stop"
    # the call and its result go back in the next turn
    messages += [resp.message, {"role": "tool", "content": "It is 4 degrees and snowing.", "tool_name": "get_weather"}]
    again = client.chat(model=MODEL, messages=messages, options=OPTIONS)
    assert again.message.content


def test_tool_calls_in_ollama_shape(real_gateway: Gateway) -> None:
    """Raw body: arguments are an object, each call has an id and an index (as Ollama sends)."""
    tools = [WEATHER]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Weather in Lima?"}], "tools": tools}
    # Ollama has no tool_choice: force a call the only way an Ollama client can ask for JSON, through
    # the OpenAI route, then check the same worker answer through /api/chat with a prompt that calls.
    with httpx.Client(base_url=real_gateway.url, timeout=300) as http:
        forced = http.post(
            "/v1/chat/completions",
            json={**body, "tool_choice": "required", "max_tokens": 48, "temperature": 0},
        ).json()
        assert forced["choices"][0]["finish_reason"] == "tool_calls"
        answer = http.post("/api/chat", json={**body, "stream": False, "options": OPTIONS}).json()
    message = answer["message"]
    for i, call in enumerate(message.get("tool_calls") or []):
        assert call["id"].startswith("call_") and call["function"]["index"] == i
        assert isinstance(call["function"]["arguments"], dict)
    assert answer["done_reason"] == "stop"
