"""Engines that cannot constrain their output refuse tools and JSON formats clearly (mock engine)."""

from __future__ import annotations

from typing import Any

import pytest
from gateway import Gateway

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"tools": [TOOL]}, "tools", "tools are not supported by this model's engine"),
        ({"tools": [TOOL], "tool_choice": "required"}, "tools", "cannot constrain"),
        ({"response_format": {"type": "json_object"}}, "response_format", "'json_object' is not supported"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object"}},
                }
            },
            "response_format",
            "'json_schema' is not supported",
        ),
    ],
)
def test_refused_by_an_engine_without_grammar(
    mock_gateway: Gateway, extra: dict[str, Any], param: str, words: str
) -> None:
    with mock_gateway.client() as http:
        resp = http.post(
            "/v1/chat/completions",
            json={"model": "mock-chat", "messages": MESSAGES, "max_tokens": 4, **extra},
        )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == param and error["code"] == "unsupported_feature" and words in error["message"]


def test_tool_choice_none_needs_no_grammar(mock_gateway: Gateway) -> None:
    body = {
        "model": "mock-chat",
        "messages": MESSAGES,
        "max_tokens": 4,
        "tools": [TOOL],
        "tool_choice": "none",
    }
    with mock_gateway.client() as http:
        resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200
    message = resp.json()["choices"][0]["message"]
    assert message["content"] and "tool_calls" not in message
