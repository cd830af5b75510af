"""Hostile input, as a table by category, against a real gateway with mock engines: every case is
answered with the expected 4xx in the route's own error shape (OpenAI's ``{"error": {...}}``,
Ollama's ``{"error": "..."}``), never a 5xx. Issue 16's bad inputs are named in the ids."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway import MOCK_CONFIG, Gateway

CONFIG: dict[str, Any] = {
    **MOCK_CONFIG,
    "max_body_bytes": 4 * 1024 * 1024,
    "rag": {
        "generation_model": "mock-chat",
        "embedding_model": "mock-embed",
        "max_collections": 3,
        "max_documents": 3,
    },
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("hostile"), CONFIG)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client(timeout=60) as c:
        yield c


@dataclass
class Case:
    id: str
    method: str
    path: str
    status: int | tuple[int, ...]
    json: Any = None
    content: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    says: str = ""  # a piece of the error message


def deep(n: int) -> str:
    return '{"model": "mock-chat", "messages": ' + "[" * n + "]" * n + "}"


SURROGATE = b'"a\\ud800b"'
CHAT = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
JSON_HEADERS = {"content-type": "application/json"}


def with_surrogate(body: dict[str, Any], key: str) -> bytes:
    raw = json.dumps({**body, key: "SURROGATE"}).encode()
    return raw.replace(b'"SURROGATE"', SURROGATE)


def chat_surrogate() -> bytes:
    raw = json.dumps({**CHAT, "messages": [{"role": "user", "content": "SURROGATE"}]}).encode()
    return raw.replace(b'"SURROGATE"', SURROGATE)


def ollama_chat_surrogate() -> bytes:
    raw = json.dumps({"model": "mock-chat", "messages": [{"role": "user", "content": "SURROGATE"}]}).encode()
    return raw.replace(b'"SURROGATE"', SURROGATE)


def nested_html(n: int) -> bytes:
    return ("<html><body>" + "<div>" * n + "x" + "</div>" * n + "</body></html>").encode()


def zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.txt", b"\0" * (16 * 1024 * 1024))
    return buf.getvalue()


CASES: list[Case] = [
    # -- malformed and deep JSON ---------------------------------------------------------------
    Case("json-truncated-chat", "POST", "/v1/chat/completions", 400, content=b'{"model": ', says="not valid JSON"),
    Case("json-array-body", "POST", "/v1/chat/completions", 400, content=b"[1, 2]", says="JSON object"),
    Case("json-empty-body", "POST", "/v1/embeddings", 400, content=b"", says="empty"),
    Case("json-deep-100000-chat", "POST", "/v1/chat/completions", 400, content=deep(100_000), says="nested too deeply"),
    Case("json-deep-100000-ollama-chat", "POST", "/api/chat", 400, content=deep(100_000), says="nested too deeply"),
    Case("json-deep-100000-rag-query", "POST", "/v1/rag/query", 400, content=deep(100_000), says="nested too deeply"),
    Case("json-deep-100-chat", "POST", "/v1/chat/completions", 400, content=deep(100), says="nested too deeply"),
    Case("json-deep-admin-load", "POST", "/models/load", 400, content=deep(100_000), says="nested too deeply"),
    Case("json-malformed-admin-load", "POST", "/models/load", 400, content=b'{"model": "mock-chat",}', says="not valid JSON"),
    Case("json-text-body-admin-load", "POST", "/models/load", 400, content=b"mock-chat", headers={"content-type": "text/plain"}, says="not valid JSON"),
    Case("json-nan-chat", "POST", "/v1/chat/completions", 400, content=b'{"model": "mock-chat", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}'),
    Case("json-invalid-utf8", "POST", "/v1/completions", 400, content=b'{"model": "mock-chat", "prompt": "\xff\xfe"}'),
    # -- wrong types ---------------------------------------------------------------------------
    Case("type-stream-yes-chat", "POST", "/v1/chat/completions", 400, json={**CHAT, "stream": "yes"}, says="stream"),
    Case("type-stream-yes-ollama", "POST", "/api/generate", 400, json={"model": "mock-chat", "prompt": "x", "stream": "yes"}, says="stream"),
    Case("type-stream-1-completions", "POST", "/v1/completions", 400, json={"model": "mock-chat", "prompt": "x", "stream": 1}),
    Case("type-force-string-unload", "POST", "/models/unload", 400, json={"model": "mock-chat", "force": "yes"}, says="force"),
    Case("type-messages-string", "POST", "/v1/chat/completions", 400, json={"model": "mock-chat", "messages": "hi"}),
    Case("type-model-number", "POST", "/v1/embeddings", 400, json={"model": 7, "input": "x"}),
    Case("type-input-dict", "POST", "/api/embed", 400, json={"model": "mock-embed", "input": {"a": 1}}),
    Case("type-rag-top-k-string", "POST", "/v1/rag/query", 400, json={"query": "q", "top_k": "many"}),
    Case("type-rag-values-limit", "GET", "/v1/rag/values?limit=abc", 400),
    # -- absurd numbers ------------------------------------------------------------------------
    Case("num-max-tokens-huge", "POST", "/v1/chat/completions", 400, json={**CHAT, "max_tokens": 10**30}),
    Case("num-max-tokens-negative", "POST", "/v1/completions", 400, json={"model": "mock-chat", "prompt": "x", "max_tokens": -1}),
    Case("num-temperature-inf", "POST", "/v1/chat/completions", 400, content=b'{"model": "mock-chat", "messages": [{"role": "user", "content": "x"}], "temperature": 1e999}'),
    Case("num-context-overflow", "POST", "/v1/chat/completions", 400, json={**CHAT, "max_tokens": 100_000}),
    Case("num-seed-huge", "POST", "/v1/chat/completions", (200, 400), json={**CHAT, "seed": 2**70}),
    Case("num-ollama-num-predict-huge", "POST", "/api/generate", (200, 400), json={"model": "mock-chat", "prompt": "x", "stream": False, "options": {"num_predict": 10**30}}),
    Case("num-rag-rating-huge", "POST", "/v1/rag/feedback", 400, json={"trace_id": "x", "rating": 1e300}),
    # -- Unicode edge cases --------------------------------------------------------------------
    Case("unicode-surrogate-chat", "POST", "/v1/chat/completions", 400, content=chat_surrogate(), says="surrogate"),
    Case("unicode-surrogate-completions", "POST", "/v1/completions", 400, content=with_surrogate({"model": "mock-chat", "max_tokens": 2}, "prompt"), says="surrogate"),
    Case("unicode-surrogate-embeddings", "POST", "/v1/embeddings", 400, content=with_surrogate({"model": "mock-embed"}, "input"), says="surrogate"),
    Case("unicode-surrogate-ollama-chat", "POST", "/api/chat", 400, content=ollama_chat_surrogate(), says="surrogate"),
    Case("unicode-surrogate-ollama-generate", "POST", "/api/generate", 400, content=with_surrogate({"model": "mock-chat"}, "prompt"), says="surrogate"),
    Case("unicode-surrogate-ollama-embed", "POST", "/api/embed", 400, content=with_surrogate({"model": "mock-embed"}, "input"), says="surrogate"),
    Case("unicode-surrogate-rag-query", "POST", "/v1/rag/query", 400, content=with_surrogate({}, "query"), says="surrogate"),
    Case("unicode-surrogate-rag-document", "POST", "/v1/rag/collections/c1/documents", 400, content=with_surrogate({"name": "a.txt"}, "text"), says="surrogate"),
    Case("unicode-surrogate-key", "POST", "/v1/chat/completions", 400, content=b'{"model": "mock-chat", "\\udfff": 1, "messages": []}', says="surrogate"),
    Case("unicode-pair-ok", "POST", "/v1/completions", 200, content=b'{"model": "mock-chat", "prompt": "a\\ud83d\\ude00b", "max_tokens": 2}'),
    Case("unicode-nul-prompt", "POST", "/v1/completions", 200, json={"model": "mock-chat", "prompt": "a\0b", "max_tokens": 2}),
    # -- oversize bodies and fields ------------------------------------------------------------
    Case("size-body-over-limit", "POST", "/v1/chat/completions", 413, content=b" " * (5 * 1024 * 1024)),
    Case("size-stop-list", "POST", "/v1/chat/completions", 400, json={**CHAT, "stop": [str(i) for i in range(100)]}, says="stop"),
    Case("size-stop-long", "POST", "/v1/completions", 400, json={"model": "mock-chat", "prompt": "x", "stop": "x" * 5000}, says="stop"),
    Case("size-ollama-stop-list", "POST", "/api/generate", 400, json={"model": "mock-chat", "prompt": "x", "options": {"stop": ["a"] * 100}}),
    Case("size-messages-count", "POST", "/v1/chat/completions", 400, json={**CHAT, "messages": [{"role": "user", "content": ""}] * 5000}, says="messages"),
    Case("size-ollama-messages-count", "POST", "/api/chat", 400, json={"model": "mock-chat", "messages": [{"role": "user", "content": ""}] * 5000}),
    Case("size-embedding-inputs", "POST", "/v1/embeddings", 400, json={"model": "mock-embed", "input": ["x"] * 3000}),
    Case("size-ollama-embed-inputs", "POST", "/api/embed", 400, json={"model": "mock-embed", "input": ["x"] * 3000}),
    Case("size-rag-query", "POST", "/v1/rag/query", 400, json={"query": "x" * 5000}),
    # -- hostile names -------------------------------------------------------------------------
    Case("name-doc-dotdot", "POST", "/v1/rag/collections/c1/documents", 400, json={"name": "../../etc/passwd", "text": "x"}, says="document name"),
    Case("name-doc-nul", "POST", "/v1/rag/collections/c1/documents", 400, json={"name": "a\0b.txt", "text": "x"}, says="document name"),
    Case("name-doc-absolute", "POST", "/v1/rag/collections/c1/documents", 400, json={"name": "/etc/passwd", "text": "x"}, says="document name"),
    Case("name-doc-backslash", "POST", "/v1/rag/collections/c1/documents", 400, json={"name": "..\\x.txt", "text": "x"}, says="document name"),
    Case("name-doc-newline", "POST", "/v1/rag/collections/c1/documents", 400, json={"name": "a\nb", "text": "x"}, says="document name"),
    Case("name-doc-long", "POST", "/v1/rag/collections/c1/documents", 400, json={"name": "a" * 600, "text": "x"}),
    Case("name-doc-multipart-dotdot", "POST", "/v1/rag/collections/c1/documents", 400, files={"file": ("x.txt", b"hello")}, data={"name": "a/../../b.txt"}, says="document name"),
    Case("name-collection-dotdot", "POST", "/v1/rag/collections/..%2F..%2Fx/documents", (400, 404), json={"name": "a.txt", "text": "x"}),
    Case("name-collection-long", "POST", "/v1/rag/collections/" + "c" * 100 + "/documents", 400, json={"name": "a.txt", "text": "x"}, says="collection"),
    Case("name-collection-control", "POST", "/v1/rag/collections/a%01b/documents", 400, json={"name": "a.txt", "text": "x"}, says="collection"),
    Case("name-model-control", "POST", "/v1/chat/completions", 404, json={**CHAT, "model": "mock\0chat"}),
    # -- hostile documents ---------------------------------------------------------------------
    Case("doc-html-nested-50000", "POST", "/v1/rag/collections/c1/documents", 400, files={"file": ("deep.html", nested_html(50_000), "text/html")}, says="nests"),
    Case("doc-fake-pdf", "POST", "/v1/rag/collections/c1/documents", 400, files={"file": ("x.pdf", b"%PDF-1.4 not really", "application/pdf")}, says="PDF"),
    Case("doc-binary-text", "POST", "/v1/rag/collections/c1/documents", (400, 415), files={"file": ("x.txt", bytes(range(256)) * 64, "text/plain")}),
    Case("doc-gzip-bomb-as-text", "POST", "/v1/rag/collections/c1/documents", (400, 415), files={"file": ("x.txt", gzip.compress(b"\0" * (16 << 20)), "text/plain")}),
    Case("doc-zip-bomb-as-pdf", "POST", "/v1/rag/collections/c1/documents", 400, files={"file": ("x.pdf", zip_bomb(), "application/pdf")}),
    Case("doc-markdown-pathological", "POST", "/v1/rag/collections/c1/documents", (200, 201, 400), json={"name": "p.md", "text": ">" * 20000 + " x\n" + "*" * 50000 + "\n" + "[" * 20000}),
    Case("doc-no-file-field", "POST", "/v1/rag/collections/c1/documents", 400, files={"other": ("x.txt", b"x")}),
    # -- unknown models, routes and methods -----------------------------------------------------
    Case("unknown-model-chat", "POST", "/v1/chat/completions", 404, json={**CHAT, "model": "nope"}),
    Case("unknown-model-ollama", "POST", "/api/generate", 404, json={"model": "nope", "prompt": "x"}),
    Case("unknown-model-load", "POST", "/models/load", 404, json={"model": "nope"}),
    Case("absurd-keep-alive-load", "POST", "/models/load", 400, json={"model": "mock-chat", "keep_alive": 4.6e16}, says="at most"),
    Case("unknown-route", "GET", "/v1/nothing", 404),
    Case("unknown-route-ollama", "GET", "/api/nothing", 404),
    Case("wrong-method-chat", "GET", "/v1/chat/completions", 405),
    Case("wrong-method-ollama", "PUT", "/api/chat", 405),
    Case("wrong-kind-embed-on-chat", "POST", "/v1/embeddings", 400, json={"model": "mock-chat", "input": "x"}),
]  # fmt: skip


def _request(client: httpx.Client, case: Case) -> httpx.Response:
    headers = dict(case.headers)
    kwargs: dict[str, Any] = {}
    if case.json is not None:
        kwargs["json"] = case.json
    elif case.content is not None:
        kwargs["content"] = case.content
        headers.setdefault("content-type", "application/json")
    if case.files is not None:
        kwargs["files"] = case.files
        kwargs["data"] = case.data
    return client.request(case.method, case.path, headers=headers, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(client: httpx.Client, case: Case) -> None:
    resp = _request(client, case)
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    assert resp.status_code < 500, f"{case.id}: {resp.status_code} {resp.text[:300]}"
    assert resp.status_code in expected, f"{case.id}: {resp.status_code} {resp.text[:300]}"
    if resp.status_code >= 400:
        body = resp.json()
        if case.path.startswith("/api/"):
            assert isinstance(body["error"], str), body
            message = body["error"]
        else:
            assert set(body["error"]) >= {"message", "type", "param", "code"}, body
            message = body["error"]["message"]
        assert case.says.lower() in message.lower(), f"{case.id}: {message}"
        assert "Invalid value for 'None'" not in message
        assert "Traceback" not in message


def test_rag_quotas(client: httpx.Client) -> None:
    """Collections and documents beyond the configured quotas: a 429 naming the quota."""
    for collection in client.get("/v1/rag/collections").json()["data"]:  # the table's
        client.delete(f"/v1/rag/collections/{collection['name']}").raise_for_status()
    for i in range(3):
        resp = client.post(f"/v1/rag/collections/q{i}/documents", json={"name": "a.txt", "text": "one line"})
        assert resp.status_code in (200, 201), resp.text
    resp = client.post("/v1/rag/collections/q9/documents", json={"name": "a.txt", "text": "one line"})
    assert resp.status_code == 429 and "rag.max_collections" in resp.json()["error"]["message"]
    for i in range(1, 3):
        resp = client.post("/v1/rag/collections/q0/documents", json={"name": f"d{i}.txt", "text": "x y"})
        assert resp.status_code in (200, 201), resp.text
    resp = client.post("/v1/rag/collections/q0/documents", json={"name": "d9.txt", "text": "x y"})
    assert resp.status_code == 429 and "rag.max_documents" in resp.json()["error"]["message"]
    # replacing a document is not a new one
    resp = client.post("/v1/rag/collections/q0/documents", json={"name": "d1.txt", "text": "x y z"})
    assert resp.status_code in (200, 201), resp.text
    # a folder's relative path is a valid name
    client.delete("/v1/rag/collections/q0/documents/d2.txt").raise_for_status()
    resp = client.post("/v1/rag/collections/q0/documents", json={"name": "docs/guide.md", "text": "# G\nx"})
    assert resp.status_code in (200, 201), resp.text


def test_gateway_log_has_no_traceback(gateway: Gateway, client: httpx.Client) -> None:
    """After the table: no unhandled error was logged (each would have been a 500)."""
    assert "Traceback" not in Path(gateway.log_path).read_text(errors="replace")
