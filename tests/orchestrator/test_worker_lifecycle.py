"""Workers: started on demand, survived when killed, never outliving the gateway."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from pathlib import Path

import httpx
import pytest
from gateway import MOCK_CONFIG, Gateway, pid_alive, wait_until

CHAT = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def test_worker_starts_on_first_request(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert mock_gateway.worker_pids()


def test_killed_worker_is_survived(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        pids = mock_gateway.worker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not any(pid_alive(p) for p in pids))
        # the very next request succeeds on a fresh worker
        resp = http.post("/v1/chat/completions", json=CHAT)
        assert resp.status_code == 200, resp.text
        assert http.get("/health").status_code == 200
    assert set(mock_gateway.worker_pids()).isdisjoint(pids)


def test_worker_killed_mid_stream_ends_stream_with_error(tmp_path: Path) -> None:
    config = {"models": [{"id": "slow", "engine": "mock", "options": {"tokens_per_second": 20}}]}
    gw = Gateway(tmp_path, config)
    try:
        with gw.client() as http:
            body = {
                "model": "slow",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 200,
                "stream": True,
            }
            events = []
            with http.stream("POST", "/v1/chat/completions", json=body) as resp:
                for line in resp.iter_lines():
                    if line.startswith("data: "):
                        events.append(line[6:])
                        if len(events) == 3:
                            for pid in gw.worker_pids():
                                os.kill(pid, signal.SIGKILL)
            assert events[-1] == "[DONE]" or "error" in events[-1]
            errors = [json.loads(e) for e in events if e.startswith("{") and '"error"' in e]
            assert errors and "not reachable" in errors[-1]["error"]["message"]
            assert (
                http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 3}).status_code
                == 200
            )
    finally:
        gw.stop()


def test_sigkilled_gateway_leaves_no_worker(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, MOCK_CONFIG)
    with gw.client() as http:
        http.post("/v1/chat/completions", json=CHAT).raise_for_status()
        http.post("/v1/embeddings", json={"model": "mock-embed", "input": "x"}).raise_for_status()
    pids = gw.worker_pids()
    assert len(pids) == 2
    gw.stop(signal.SIGKILL)
    assert wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=10), "workers outlived the gateway"


def test_sigterm_lets_inflight_stream_finish_then_stops_workers(tmp_path: Path) -> None:
    config = {"models": [{"id": "slow", "engine": "mock", "options": {"tokens_per_second": 40}}]}
    gw = Gateway(tmp_path, config)
    body = {"model": "slow", "messages": [{"role": "user", "content": "x"}], "max_tokens": 60, "stream": True}
    tokens: list[str] = []
    started = threading.Event()

    def consume() -> None:
        with (
            httpx.Client(base_url=gw.url, timeout=60) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as resp,
        ):
            for line in resp.iter_lines():
                if line.startswith("data: {") and '"content":"' in line and '"role"' not in line:
                    tokens.append(line)
                    started.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert started.wait(30)
    pids = gw.worker_pids()
    gw.proc.send_signal(signal.SIGTERM)
    thread.join(60)
    assert len(tokens) == 60, "the in-flight stream was cut off"
    assert gw.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    assert wait_until(lambda: not any(pid_alive(p) for p in pids))


@pytest.mark.parametrize("n", [20])
def test_concurrent_first_requests_start_one_worker(tmp_path: Path, n: int) -> None:
    config = {"models": [{"id": "m", "engine": "mock", "options": {"load_seconds": 1.0}}]}
    gw = Gateway(tmp_path, config)
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
        results: list[int] = []

        def call() -> None:
            with httpx.Client(base_url=gw.url, timeout=60) as http:
                results.append(http.post("/v1/chat/completions", json=body).status_code)

        threads = [threading.Thread(target=call) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * n
        assert len(gw.worker_pids()) == 1
        assert gw.log_path.read_text().count("started worker pid") == 1  # the whole log, not its tail
    finally:
        gw.stop()


def test_load_failure_is_reported_with_the_reason(tmp_path: Path) -> None:
    config = {"models": [{"id": "broken", "engine": "mock", "options": {"fail_on_load": True}}]}
    gw = Gateway(tmp_path, config)
    try:
        with gw.client() as http:
            resp = http.post(
                "/v1/chat/completions",
                json={"model": "broken", "messages": [{"role": "user", "content": "x"}]},
            )
        assert resp.status_code == 500
        assert "fail_on_load" in resp.json()["error"]["message"]
    finally:
        gw.stop()


def test_a_load_that_times_out_is_a_503_in_each_dialect(tmp_path: Path) -> None:
    """A load still under way at worker_start_timeout: a transient 503 with Retry-After that names
    the phase and the setting (not the 500 of a load that failed)."""
    config = {
        "worker_start_timeout": 1,
        "models": [{"id": "slow", "engine": "mock", "options": {"load_seconds": 30}}],
    }
    gw = Gateway(tmp_path, config)
    try:
        messages = [{"role": "user", "content": "x"}]
        with gw.client() as http:
            openai = http.post("/v1/chat/completions", json={"model": "slow", "messages": messages})
            ollama = http.post("/api/chat", json={"model": "slow", "messages": messages, "stream": False})
        assert openai.status_code == 503, openai.text
        assert int(openai.headers["Retry-After"]) >= 1
        error = openai.json()["error"]
        assert error["type"] == "service_unavailable" and error["code"] == "worker_unavailable"
        # the phase, unless the worker took over 1 s to answer at all (a busy machine)
        timed_out = re.compile(
            r"(still loading after|did not become healthy within) 1s .*worker_start_timeout"
        )
        assert timed_out.search(error["message"]), error["message"]
        assert ollama.status_code == 503, ollama.text
        assert int(ollama.headers["Retry-After"]) >= 1
        assert timed_out.search(ollama.json()["error"]), ollama.text
    finally:
        gw.stop()


@pytest.mark.slow  # 12 s of mock load; tests/orchestrator/test_poll_health.py covers the rule
def test_converting_and_loading_each_get_the_start_timeout(tmp_path: Path) -> None:
    """6 s converting plus 6 s loading: past a 10 s timeout in all, within it per phase (the
    process start is a phase of its own: a worker took 6 s to answer on the busy test machine)."""
    options = {"convert_seconds": 6, "load_seconds": 6}
    config = {"worker_start_timeout": 10, "models": [{"id": "m", "engine": "mock", "options": options}]}
    gw = Gateway(tmp_path, config)
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
        with gw.client() as http:
            resp = http.post("/v1/chat/completions", json=body)
        assert resp.status_code == 200, resp.text
    finally:
        gw.stop()
