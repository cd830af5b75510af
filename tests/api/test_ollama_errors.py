"""Bad input on the Ollama routes: Ollama's ``{"error": "..."}`` body with Ollama's status codes.

Never a 500, a 422 or a hang; the message says what was wrong (and names the field).
"""

from __future__ import annotations

import pytest
from gateway import Gateway

GEN = "/api/generate"
CHAT = "/api/chat"
EMBED = "/api/embed"
MSG = [{"role": "user", "content": "hi"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="

CASES = [
    # (method, path, body, status, words in the message)
    ("POST", GEN, b"{bad json", 400, "not valid json"),
    ("POST", GEN, b"", 400, "empty"),
    ("POST", CHAT, b"[1]", 400, "json object"),
    ("POST", GEN, {"prompt": "hi"}, 400, "'model' is a required property"),
    ("POST", GEN, {"model": "nope", "prompt": "hi"}, 404, "model 'nope' not found"),
    ("POST", CHAT, {"model": "nope", "messages": MSG}, 404, "model 'nope' not found"),
    ("POST", EMBED, {"model": "nope", "input": "x"}, 404, "model 'nope' not found"),
    ("POST", "/api/embeddings", {"model": "nope", "prompt": "x"}, 404, "model 'nope' not found"),
    ("POST", "/api/show", {"model": "nope"}, 404, "model 'nope' not found"),
    ("POST", "/api/show", {}, 400, "model is required"),
    (
        "POST",
        GEN,
        {"model": "mc", "prompt": "hi", "options": {"temperature": "hot"}},
        400,
        "options.temperature",
    ),
    (
        "POST",
        GEN,
        {"model": "mc", "prompt": "hi", "options": {"num_predict": "many"}},
        400,
        "options.num_predict",
    ),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "options": {"stop": 5}}, 400, "options.stop"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "options": {"top_p": 3}}, 400, "options.top_p"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "options": {"temperature": 9}}, 400, "options.temperature"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "options": "hot"}, 400, "options"),
    (
        "POST",
        CHAT,
        {"model": "mc", "messages": MSG, "options": {"num_ctx": 4096}},
        400,
        "num_ctx 4096 exceeds",
    ),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "options": {"num_predict": 9000}}, 400, "context length"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "keep_alive": "soon"}, 400, "keep_alive"),
    (
        "POST",
        GEN,
        {"model": "mc", "prompt": "hi", "raw": True, "context": [1]},
        400,
        "raw mode does not support",
    ),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "suffix": "end"}, 400, "does not support insert"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "template": "{{ .Prompt }}"}, 400, "template"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "think": True}, 400, "does not support thinking"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "format": "yaml"}, 400, "invalid format"),
    ("POST", CHAT, {"model": "mc", "messages": MSG, "logprobs": True}, 400, "logprobs are not supported"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "format": "json"}, 400, "not supported"),
    (
        "POST",
        CHAT,
        {"model": "mc", "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]},
        400,
        "tools are not supported",
    ),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "images": [PNG]}, 400, "image"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "images": [PNG], "raw": True}, 400, "image"),
    ("POST", GEN, {"model": "mc", "prompt": "hi", "images": ["%%%"]}, 400, "base64"),
    (
        "POST",
        CHAT,
        {"model": "mc", "messages": [{"role": "user", "content": "hi", "images": [PNG]}]},
        400,
        "image",
    ),
    ("POST", CHAT, {"model": "mc", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role"),
    ("POST", CHAT, {"model": "mock-embed", "messages": MSG}, 400, "does not support chat"),
    ("POST", GEN, {"model": "mock-embed", "prompt": "hi"}, 400, "does not support generate"),
    ("POST", EMBED, {"model": "mc", "input": "x"}, 400, "does not support embeddings"),
    ("POST", EMBED, {"model": "mock-embed", "input": 42}, 400, "invalid input type"),
    ("POST", EMBED, {"model": "mock-embed", "input": ["x", 1]}, 400, "invalid input type"),
    ("POST", EMBED, {"model": "mock-embed", "input": "x", "dimensions": 0}, 400, "dimensions"),
    ("POST", "/api/pull", {"model": "llama3"}, 404, "allow_pull"),
    ("POST", "/api/push", {"model": "mc"}, 400, "nanoserve does not push"),
    ("POST", "/api/create", {"model": "x", "from": "mc"}, 400, "config file"),
    ("POST", "/api/copy", {"source": "mc", "destination": "x"}, 400, "aliases"),
    ("DELETE", "/api/delete", {"model": "mc"}, 400, "config file"),
    ("DELETE", "/api/delete", {"model": "nope"}, 404, "not found"),
    ("POST", "/api/blobs/sha256:00", b"", 400, "nanoserve does not store blobs"),
    ("GET", "/api/nothing", None, 404, "no route"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), CASES)
def test_bad_input(
    mock_gateway: Gateway, method: str, path: str, body: object, status: int, words: str
) -> None:
    with mock_gateway.client() as http:
        if isinstance(body, bytes):
            resp = http.request(method, path, content=body, headers={"content-type": "application/json"})
        else:
            resp = http.request(method, path, json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    error = resp.json()
    assert set(error) == {"error"} and isinstance(error["error"], str)
    assert words.lower() in error["error"].lower()


def test_head_of_a_blob_is_404(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        assert http.head("/api/blobs/sha256:00").status_code == 404


def test_pull_of_a_configured_model_succeeds(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        streamed = http.post("/api/pull", json={"model": "mock-chat:latest"})
        whole = http.post("/api/pull", json={"model": "mc", "stream": False})
    assert streamed.headers["content-type"] == "application/x-ndjson"
    assert streamed.text.splitlines() == ['{"status":"success"}']
    assert whole.json() == {"status": "success"}


def test_curl_form_content_type_is_accepted(mock_gateway: Gateway) -> None:
    """``curl -d`` sends application/x-www-form-urlencoded; Ollama reads the body as JSON anyway."""
    body = b'{"model": "mc", "prompt": "hi", "stream": false, "options": {"num_predict": 2}}'
    with mock_gateway.client() as http:
        resp = http.post(GEN, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["done"] is True
