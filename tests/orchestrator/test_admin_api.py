"""The admin API and the ``nanoserve models`` CLI against a real gateway with mock workers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from gateway import Gateway, pid_alive, wait_until

from nanoserve.cli.main import cli

# Room for two of the 100 MiB models (each ~160 MiB with its runtime), never for "huge".
SLOW = {"memory_mib": 100, "tokens_per_second": 40}
BUDGET = 400
CONFIG: dict[str, Any] = {
    "memory": {"budget_mib": BUDGET, "max_wait": 30, "load_timeout": 0.5},
    "models": [
        {"id": "a", "engine": "mock", "options": SLOW},
        {"id": "b", "engine": "mock", "options": SLOW, "priority": 2},
        {"id": "c", "engine": "mock", "options": SLOW, "parallel": 1, "max_queue": 0},
        {"id": "huge", "engine": "mock", "options": {"memory_mib": 1000}},
    ],
}


def chat(model: str, max_tokens: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
        **extra,
    }


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("admin"), CONFIG)
    yield gateway
    gateway.stop()


def models_by_id(http: httpx.Client) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in http.get("/models/status").json()["models"]}


def unload_all(http: httpx.Client) -> None:
    for model in ("a", "b", "c"):
        http.post("/models/unload", json={"model": model, "force": True}).raise_for_status()


def test_status_shape(gw: Gateway) -> None:
    with gw.client() as http:
        status = http.get("/models/status").json()
    (ram,) = status["devices"]
    assert ram["name"] == "ram" and ram["budget_mib"] == BUDGET
    assert ram["total_mib"] >= ram["free_mib"] > 0 and ram["used_mib"] > 0
    models = {m["id"]: m for m in status["models"]}
    assert set(models) == {"a", "b", "c", "huge"}
    for key in (
        "id",
        "state",
        "estimated_mib",
        "measured_mib",
        "loaded_at",
        "last_used",
        "expires_at",
        "in_flight",
        "queued",
        "priority",
        "pinned",
    ):
        assert key in models["a"]
    assert models["huge"]["estimated_mib"] > 1000 and models["b"]["priority"] == 2


def test_load_dry_run_then_load_then_unload(gw: Gateway) -> None:
    with gw.client() as http:
        unload_all(http)
        dry = http.post("/models/load", json={"model": "a", "dry_run": True}).json()
        assert dry["fits"] is True and dry["would_evict"] == []
        assert models_by_id(http)["a"]["state"] == "stopped"  # a dry run does nothing
        loaded = http.post("/models/load", json={"model": "a", "keep_alive": "10m", "priority": 7}).json()
        assert loaded["state"] == "ready" and loaded["priority"] == 7 and loaded["keep_alive"] == 600
        assert loaded["measured_mib"] >= 100 and loaded["estimated_mib"] >= 100
        assert loaded["expires_at"] is not None and loaded["pid"]
        http.post("/models/load", json={"model": "b"}).raise_for_status()
        dry_c = http.post("/models/load", json={"model": "c", "dry_run": True}).json()
        assert dry_c["fits"] is True and dry_c["would_evict"] == ["b"]  # a has priority 7
        pid = loaded["pid"]
        unloaded = http.post("/models/unload", json={"model": "a"}).json()
        assert unloaded["state"] == "stopped" and unloaded["unloads"] == {"manual": 1}
        assert not pid_alive(pid)


def test_load_evicts_and_counts(gw: Gateway) -> None:
    with gw.client() as http:
        unload_all(http)
        before = http.get("/models/status").json()["counters"]["evictions"]
        for model in ("a", "b", "c"):
            assert http.post("/v1/chat/completions", json=chat(model)).status_code == 200
        status = http.get("/models/status").json()
        assert status["counters"]["evictions"] == before + 1
        states = {m["id"]: m["state"] for m in status["models"]}
        assert states["a"] == "stopped" and states["b"] == states["c"] == "ready"
        assert status["devices"][0]["models_mib"] <= BUDGET


def test_never_fits_is_507(gw: Gateway) -> None:
    with gw.client() as http:
        resp = http.post("/v1/chat/completions", json=chat("huge"))
        assert resp.status_code == 507
        message = resp.json()["error"]["message"]
        assert "'huge' needs" in message and f"budget is {BUDGET} MiB" in message
        dry = http.post("/models/load", json={"model": "huge", "dry_run": True}).json()
        assert dry["fits"] is False and dry["never_fits"] is True
        assert http.post("/models/load", json={"model": "huge"}).status_code == 507


def _stream(gw: Gateway, model: str, max_tokens: int, events: list[str], started: threading.Event) -> None:
    body = chat(model, max_tokens, stream=True)
    with (
        httpx.Client(base_url=gw.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                started.set()


def test_unload_with_a_stream_in_flight_409_then_force_ends_it_with_an_error(gw: Gateway) -> None:
    events: list[str] = []
    started = threading.Event()
    thread = threading.Thread(target=_stream, args=(gw, "a", 400, events, started))
    thread.start()
    try:
        assert started.wait(30)
        with gw.client() as http:
            conflict = http.post("/models/unload", json={"model": "a"})
            assert conflict.status_code == 409
            assert "'a' has 1 request(s) in flight" in conflict.json()["error"]["message"]
            assert http.post("/models/unload", json={"model": "a", "force": True}).status_code == 200
        thread.join(30)
    finally:
        thread.join(30)
    errors = [json.loads(e)["error"] for e in events if e.startswith("{") and '"error"' in e]
    assert errors and "unloaded (manual, forced)" in errors[-1]["message"]


def test_busy_memory_is_503_with_retry_after(gw: Gateway) -> None:
    with gw.client() as http:
        unload_all(http)
    streams = []
    for model in ("a", "b"):  # both hold memory and are busy
        events: list[str] = []
        started = threading.Event()
        thread = threading.Thread(target=_stream, args=(gw, model, 400, events, started))
        thread.start()
        streams.append(thread)
        assert started.wait(30)
    try:
        with gw.client() as http:
            resp = http.post("/v1/chat/completions", json=chat("c"))
        assert resp.status_code == 503, resp.text
        assert int(resp.headers["retry-after"]) >= 1
        message = resp.json()["error"]["message"]
        assert "no room for model 'c' right now: it needs" in message
        assert "held by 'a' (" in message and "'b' (" in message and "request(s) in flight" in message
    finally:
        for thread in streams:
            thread.join(60)


def test_queue_full_is_429_with_retry_after(gw: Gateway) -> None:
    with gw.client() as http:
        unload_all(http)
        http.post("/models/load", json={"model": "c"}).raise_for_status()
    slow = chat("c", 40, stream=True)
    with (
        httpx.Client(base_url=gw.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=slow) as first,
    ):
        assert first.status_code == 200
        resp = http.post("/v1/chat/completions", json=chat("c"))
        assert resp.status_code == 429
        assert int(resp.headers["retry-after"]) >= 1
        assert "model 'c' is at its limit" in resp.json()["error"]["message"]
        for _ in first.iter_lines():
            pass


def test_bad_admin_requests(gw: Gateway) -> None:
    with gw.client() as http:
        assert http.post("/models/load", json={"model": "nope"}).status_code == 404
        assert http.post("/models/unload", json={"model": "nope"}).status_code == 404
        bad = http.post("/models/load", json={"model": "a", "keep_alive": "soon"})
        assert bad.status_code == 400 and "keep_alive" in bad.json()["error"]["message"]
        assert http.post("/models/load", json={"model": "a", "colour": "red"}).status_code == 400
        assert http.post("/models/unload", json={}).status_code == 400


# -- the CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["models", "--help"],
        ["models", "status", "--help"],
        ["models", "load", "--help"],
        ["models", "unload", "--help"],
    ],
)
def test_cli_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "Usage:" in result.output


def test_cli_session(gw: Gateway) -> None:
    runner = CliRunner()
    url = ["--url", gw.url]
    with gw.client() as http:
        unload_all(http)
    dry = runner.invoke(cli, ["models", "load", "a", "--dry-run", *url])
    assert dry.exit_code == 0 and "a: fits; would evict nothing" in dry.output
    load = runner.invoke(cli, ["models", "load", "a", "--priority", "3", "--keep-alive", "-1", *url])
    assert load.exit_code == 0, load.output
    assert load.output.startswith("a: ready (estimated ") and "measured " in load.output
    status = runner.invoke(cli, ["models", "status", *url])
    assert status.exit_code == 0
    lines = status.output.splitlines()
    assert lines[0].split() == ["DEVICE", "TOTAL", "USED", "FREE", "BUDGET", "MODELS"]
    row = next(line for line in lines if line.startswith("a "))
    assert "ready" in row and "never" in row
    as_json = runner.invoke(cli, ["models", "status", "--json", *url])
    assert json.loads(as_json.output)["devices"][0]["budget_mib"] == BUDGET
    unload = runner.invoke(cli, ["models", "unload", "a", *url])
    assert unload.exit_code == 0 and unload.output.strip() == "a: stopped"


def test_cli_errors_exit_1(gw: Gateway, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["models", "load", "nope", "--url", gw.url])
    assert missing.exit_code == 1 and "Error: The model 'nope' does not exist. [HTTP 404]" in missing.output
    huge = runner.invoke(cli, ["models", "load", "huge", "--url", gw.url])
    assert huge.exit_code == 1 and "[HTTP 507]" in huge.output
    down = runner.invoke(cli, ["models", "status", "--url", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "cannot reach the gateway" in down.output


def test_idle_models_unload_after_keep_alive(gw: Gateway) -> None:
    with gw.client() as http:
        http.post("/models/load", json={"model": "b", "keep_alive": 0.3}).raise_for_status()
        assert wait_until(lambda: models_by_id(http)["b"]["state"] == "stopped", timeout=20)
        assert models_by_id(http)["b"]["unloads"].get("idle", 0) >= 1
