"""Gateway-wide limits (issue 16): a request deadline, a generation-time cap and a concurrency cap
over all models, each answered in the API's own error format with the limit named."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from tests.gateway import Gateway, wait_until, worker_client

CAP = 3


class DeafUpstream(BaseHTTPRequestHandler):
    """An OpenAI-style server that ignores nanoserve's time limit: it streams until the client goes."""

    def do_GET(self) -> None:
        body = b'{"object": "list", "data": [{"id": "deaf", "object": "model"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "la "}}]}
        try:
            while True:
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass  # the gateway closed the connection

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def deaf_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), DeafUpstream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


CONFIG: dict[str, Any] = {
    "models": [
        {"id": "chat", "engine": "mock", "kind": "chat", "context_length": 8192, "parallel": 8,
         "options": {"tokens_per_second": 20}},
        {"id": "slow-load", "engine": "mock", "kind": "chat", "options": {"load_seconds": 8}},
    ],
    "limits": {"max_concurrent_requests": CAP, "request_timeout": 2.5, "max_generation_seconds": 1.0},
}  # fmt: skip


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, deaf_upstream: str) -> Iterator[Gateway]:
    deaf = {"id": "deaf", "engine": "remote", "kind": "chat", "options": {"base_url": deaf_upstream}}
    config = {**CONFIG, "models": [*CONFIG["models"], deaf]}
    gw = Gateway(tmp_path_factory.mktemp("limits"), config)
    try:
        httpx.post(gw.url + "/models/load", json={"model": "chat"}, timeout=60).raise_for_status()
        yield gw
    finally:
        gw.stop()


def test_generation_is_capped_with_finish_reason_length(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    started = time.monotonic()
    reply = client.completions.create(model="chat", prompt="a long story", max_tokens=4000)
    took = time.monotonic() - started
    assert reply.choices[0].finish_reason == "length"
    # 20 tokens/s for max_generation_seconds (1 s): about 20 tokens, far from 4000
    assert 5 <= reply.usage.completion_tokens <= 60, reply.usage
    assert took < 5

    chunks = list(
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "go on"}], max_tokens=4000, stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason == "length"  # the stream ends whole, not broken


def test_waiting_past_the_deadline_is_a_408_naming_it(gateway: Gateway) -> None:
    started = time.monotonic()
    resp = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "slow-load", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert resp.status_code == 408, resp.text
    error = resp.json()["error"]
    assert error["code"] == "request_timeout"
    assert "limits.request_timeout" in error["message"] and "slow-load" in error["message"]
    assert time.monotonic() - started < 6
    # Ollama's dialect on its own routes
    resp = httpx.post(
        gateway.url + "/api/generate",
        json={"model": "slow-load", "prompt": "hi", "stream": False},
        timeout=30,
    )
    if resp.status_code != 200:  # the load finished meanwhile: served; else the same 408
        assert resp.status_code == 408 and "limits.request_timeout" in resp.json()["error"]


def test_concurrency_cap_over_all_models_is_a_429_then_frees(gateway: Gateway) -> None:
    opened = threading.Barrier(CAP + 1)
    results: list[int] = []

    def stream() -> None:
        body = {"model": "chat", "prompt": "x", "max_tokens": 15, "stream": True}
        with httpx.stream("POST", gateway.url + "/v1/completions", json=body, timeout=30) as resp:
            first = True
            for _ in resp.iter_bytes():
                if first:
                    opened.wait()
                    first = False
            results.append(resp.status_code)

    threads = [threading.Thread(target=stream) for _ in range(CAP)]
    for t in threads:
        t.start()
    opened.wait(timeout=20)
    resp = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "over the cap"}]},
        timeout=10,
    )
    assert resp.status_code == 429, resp.text
    error = resp.json()["error"]
    assert error["code"] == "concurrency_limit" and "limits.max_concurrent_requests" in error["message"]
    assert resp.headers["retry-after"]
    ollama = httpx.post(gateway.url + "/api/generate", json={"model": "chat", "prompt": "x"}, timeout=10)
    assert ollama.status_code == 429 and "max_concurrent_requests" in ollama.json()["error"]
    for t in threads:
        t.join(30)
    assert results == [200] * CAP
    assert wait_until(
        lambda: (
            httpx.post(
                gateway.url + "/v1/completions",
                json={"model": "chat", "prompt": "x", "max_tokens": 2},
                timeout=10,
            ).status_code
            == 200
        ),
        timeout=5,
    )


def test_the_worker_ends_generation_at_the_time_limit_it_is_given(gateway: Gateway) -> None:
    status = httpx.get(gateway.url + "/models/status", timeout=10).json()
    address = next(m for m in status["models"] if m["id"] == "chat")["replicas"][0]["address"]
    body = {"model": "chat", "prompt": "x", "max_tokens": 60}
    with worker_client(address) as worker:
        direct = worker.post("/v1/completions", json=body).json()
        assert direct["usage"]["completion_tokens"] == 60  # 3 s at 20 tokens/s: no cap without the header
        limited = worker.post(
            "/v1/completions", json=body, headers={"x-nanoserve-time-limit-ms": "500"}
        ).json()
        bad = worker.post("/v1/completions", json=body, headers={"x-nanoserve-time-limit-ms": "soon"})
    assert limited["choices"][0]["finish_reason"] == "length"
    assert limited["usage"]["completion_tokens"] < 30
    assert bad.status_code == 400 and "milliseconds" in bad.json()["error"]["message"]


def test_a_backend_that_ignores_the_time_limit_is_cut_off(gateway: Gateway) -> None:
    """A foreign server may not honour the time limit: the gateway closes its stream a grace
    after the deadline, with an error event naming the limit, and frees the request's place."""
    started = time.monotonic()
    body = {"model": "deaf", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=30) as resp:
        events = [line for line in resp.iter_lines() if line.startswith("data: ")]
    took = time.monotonic() - started
    assert 2.5 <= took < 2.5 + 5 + 4, took  # request_timeout + the cut-off grace
    last = json.loads(events[-1].removeprefix("data: "))
    assert "limits.request_timeout" in last["error"]["message"], last
    assert len(events) > 10  # it streamed until then
    assert wait_until(lambda: "deaf" in httpx.get(gateway.url + "/v1/models", timeout=5).text)
    after = httpx.post(
        gateway.url + "/v1/completions", json={"model": "chat", "prompt": "x", "max_tokens": 2}, timeout=10
    )
    assert after.status_code == 200  # its place under the cap was given back


def test_limits_in_the_openapi_document(gateway: Gateway) -> None:
    spec = httpx.get(gateway.url + "/openapi.json", timeout=10).json()
    chat = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"408", "429"} <= set(chat)
    assert "concurrency" in chat["429"]["description"]
    reload_ok = spec["paths"]["/admin/reload"]["post"]["responses"]["200"]
    assert "ReloadResult" in json.dumps(reload_ok)
