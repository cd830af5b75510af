"""Killed and hung workers in the metrics and logs: unloads with reason crash, restarts, heartbeats."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway import Gateway, pid_alive, wait_until
from prom import Samples, parse, value

CHAT = "/v1/chat/completions"
QUICK = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3}
SLOW_STREAM = {**QUICK, "max_tokens": 400, "stream": True}


def config(**observability: object) -> dict:
    model = {"id": "m", "engine": "mock", "options": {"tokens_per_second": 40}}
    return {"models": [model], "observability": observability}


@pytest.fixture
def gw(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    marker = request.node.get_closest_marker("observability")
    gateway = Gateway(tmp_path, config(**(marker.kwargs if marker else {})))
    yield gateway
    for pid in gateway.worker_pids():  # a stopped worker must not outlive a failed test
        os.kill(pid, signal.SIGCONT)
    gateway.stop()


def scrape(gw: Gateway) -> Samples:
    return parse(httpx.get(gw.url + "/metrics", timeout=30).text)


def lifecycle_events(gw: Gateway) -> list[str]:
    return [
        part.removeprefix("event=")
        for line in gw.log().splitlines()
        if "nanoserve.lifecycle" in line
        for part in line.split()
        if part.startswith("event=")
    ]


class Stream:
    """A slow streamed request on a thread: its SSE payloads, and an event once a few arrived."""

    def __init__(self, gw: Gateway, after: int = 3):
        self.events: list[str] = []
        self.started = threading.Event()
        self._after = after
        self._thread = threading.Thread(target=self._run, args=(gw.url,))
        self._thread.start()

    def _run(self, url: str) -> None:
        with (
            httpx.Client(base_url=url, timeout=60) as http,
            http.stream("POST", CHAT, json=SLOW_STREAM) as resp,
        ):
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    self.events.append(line[6:])
                    if len(self.events) == self._after:
                        self.started.set()

    def join(self) -> list[dict]:
        self._thread.join(60)
        assert not self._thread.is_alive()
        return [json.loads(e) for e in self.events if e.startswith("{")]


def test_killed_idle_worker_is_a_crash_unload_and_restarts_on_next_use(gw: Gateway) -> None:
    with gw.client() as http:
        http.post(CHAT, json=QUICK).raise_for_status()
        [pid] = gw.worker_pids()
        os.kill(pid, signal.SIGKILL)
        assert wait_until(
            lambda: value(scrape(gw), "nanoserve_model_unloads_total", model="m", reason="crash") == 1
        )
        idle = scrape(gw)
        assert value(idle, "nanoserve_model_state", model="m", state="failed") == 1  # nothing was in flight
        assert value(idle, "nanoserve_worker_restarts_total", model="m") == 0
        http.post(CHAT, json=QUICK).raise_for_status()
    after = scrape(gw)
    assert value(after, "nanoserve_worker_restarts_total", model="m") == 1
    assert value(after, "nanoserve_model_loads_total", model="m") == 2
    assert value(after, "nanoserve_model_unloads_total", model="m") == 1
    assert value(after, "nanoserve_model_state", model="m", state="ready") == 1
    assert lifecycle_events(gw) == ["load", "loaded", "crash", "restart", "loaded"]


def test_worker_killed_while_serving_is_restarted_right_away(gw: Gateway) -> None:
    stream = Stream(gw)
    assert stream.started.wait(30)
    [pid] = gw.worker_pids()
    os.kill(pid, signal.SIGKILL)
    events = stream.join()
    assert "not reachable" in events[-1]["error"]["message"]
    # no new request: the gateway restarts the worker because it was serving
    assert wait_until(
        lambda: value(scrape(gw), "nanoserve_worker_restarts_total", model="m") == 1, timeout=30
    )
    samples = scrape(gw)
    assert value(samples, "nanoserve_model_unloads_total", model="m", reason="crash") == 1
    assert value(samples, "nanoserve_stream_errors_total", model="m") == 1
    assert value(samples, "nanoserve_requests_running", model="m") == 0
    assert set(gw.worker_pids()).isdisjoint({pid})


@pytest.mark.observability(heartbeat_interval=0.2, heartbeat_timeout=0.5, heartbeat_failures=2)
def test_hung_worker_is_failed_by_heartbeats_and_replaced(gw: Gateway) -> None:
    stream = Stream(gw)
    assert stream.started.wait(30)
    [pid] = gw.worker_pids()
    os.kill(pid, signal.SIGSTOP)  # alive, but answers nothing
    events = stream.join()
    message = events[-1]["error"]["message"]
    assert "stopped answering health checks" in message and f"pid {pid}" in message
    assert wait_until(lambda: not pid_alive(pid), timeout=10), "the hung worker was not killed"
    assert wait_until(
        lambda: value(scrape(gw), "nanoserve_worker_restarts_total", model="m") == 1, timeout=30
    )
    samples = scrape(gw)
    assert value(samples, "nanoserve_heartbeat_misses_total", model="m") >= 2
    assert value(samples, "nanoserve_model_unloads_total", model="m", reason="crash") == 1
    with gw.client() as http:
        http.post(CHAT, json=QUICK).raise_for_status()
    assert "stopped answering health checks" in gw.log()
