"""Bad input gets a clear 4xx in the API's own error format: never a 500, a hang or a 422."""

from __future__ import annotations

import pytest
from gateway import Gateway

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]

CASES = [
    # (path, body, status, param or None, words in the message)
    (CHAT, b"{bad json", 400, None, "not valid JSON"),
    (CHAT, b"", 400, None, "empty"),
    (CHAT, b"[1, 2]", 400, None, "JSON object"),
    (CHAT, {"model": "no-such-model", "messages": MSG}, 404, "model", "does not exist"),
    (CHAT, {"messages": MSG}, 400, "model", "required"),
    (CHAT, {"model": "mc"}, 400, "messages", "required"),
    (CHAT, {"model": "mc", "messages": []}, 400, "messages", "at least 1"),
    (CHAT, {"model": "mc", "messages": "hello"}, 400, "messages", "list"),
    (CHAT, {"model": "mc", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role", ""),
    (CHAT, {"model": "mc", "messages": MSG, "temperature": "hot"}, 400, "temperature", "number"),
    (CHAT, {"model": "mc", "messages": MSG, "temperature": 99}, 400, "temperature", "less than"),
    (CHAT, {"model": "mc", "messages": MSG, "max_tokens": -5}, 400, "max_tokens", "greater than"),
    (CHAT, {"model": "mc", "messages": MSG, "max_tokens": 10**12}, 400, "max_tokens", "less than"),
    (CHAT, {"model": "mc", "messages": MSG, "max_tokens": 100000}, 400, "messages", "context length"),
    (CHAT, {"model": "mc", "messages": MSG, "n": 3}, 400, "n", ""),
    (CHAT, {"model": "mc", "messages": MSG, "stop": ["x"] * 50}, 400, "stop", "stop sequences"),
    (CHAT, {"model": "mock-embed", "messages": MSG}, 400, "model", "embedding model"),
    (
        CHAT,
        {
            "model": "mc",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
                }
            ],
        },
        400,
        "messages",
        "image",
    ),
    (CHAT, {"model": "mc", "messages": MSG, "logprobs": True}, 400, "logprobs", "not supported"),
    ("/v1/completions", {"model": "mc", "prompt": []}, 400, "prompt", "empty"),
    ("/v1/completions", {"model": "mc", "prompt": "x", "echo": True}, 400, "echo", "not supported"),
    ("/v1/completions", {"model": "mc", "prompt": ["a", "b"]}, 400, "prompt", "one prompt"),
    ("/v1/embeddings", {"model": "mock-embed", "input": []}, 400, "input", "empty"),
    ("/v1/embeddings", {"model": "mock-embed", "input": 42}, 400, "input", ""),
    (
        "/v1/embeddings",
        {"model": "mock-embed", "input": "x", "encoding_format": "hex"},
        400,
        "encoding_format",
        "",
    ),
    ("/v1/embeddings", {"model": "mc", "input": "x"}, 400, "model", "chat model"),
]


@pytest.mark.parametrize(("path", "body", "status", "param", "words"), CASES)
def test_bad_input(
    mock_gateway: Gateway, path: str, body: object, status: int, param: str | None, words: str
) -> None:
    with mock_gateway.client() as http:
        if isinstance(body, bytes):
            resp = http.post(path, content=body, headers={"content-type": "application/json"})
        else:
            resp = http.post(path, json=body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert words.lower() in error["message"].lower()


def test_oversize_body_is_413(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        resp = http.post(
            CHAT, content=b"x" * (33 * 1024 * 1024), headers={"content-type": "application/json"}
        )
    assert resp.status_code == 413
    assert "limit" in resp.json()["error"]["message"]


def test_unknown_route_is_openai_404_and_ollama_404(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        assert http.get("/v1/nothing").json()["error"]["code"] == "not_found"
        ollama = http.get("/api/nothing")
    assert ollama.status_code == 404 and isinstance(ollama.json()["error"], str)


def test_unknown_model_retrieve_is_404(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        resp = http.get("/v1/models/nope")
    assert resp.status_code == 404 and resp.json()["error"]["param"] == "model"
