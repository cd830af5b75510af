"""Replicas of one model behind one gateway (mock engines): routing, scaling, a killed replica."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway import Gateway, pid_alive, wait_until
from prometheus_client.parser import text_string_to_metric_families

HI = [{"role": "user", "content": "hi"}]


def mock(id: str, **fields: Any) -> dict[str, Any]:
    return {"id": id, "engine": "mock", "kind": "chat", "context_length": 512, **fields}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    models = [
        mock("duo", parallel=4, replicas={"max": 2}, options={"tokens_per_second": 200}),
        mock(
            "elastic",
            parallel=1,
            replicas={"max": 2, "scale_up_queue_wait_ms": 200, "scale_up_after_s": 0, "scale_down_idle_s": 1},
            options={"tokens_per_second": 100},
        ),
    ]
    gateway = Gateway(tmp_path_factory.mktemp("replicas"), {"models": models})
    yield gateway
    gateway.stop()


def model(gw: Gateway, name: str) -> dict[str, Any]:
    with gw.client() as http:
        return next(m for m in http.get("/models/status").json()["models"] if m["id"] == name)


def served(gw: Gateway, name: str) -> dict[int, int]:
    return {r["replica"]: r["requests_total"] for r in model(gw, name)["replicas"]}


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def scale(gw: Gateway, name: str, replicas: int | None) -> dict[str, Any]:
    with gw.client(timeout=120) as http:
        answer = http.post("/models/scale", json={"model": name, "replicas": replicas})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_scale_by_hand_shows_each_replica(gw: Gateway) -> None:
    status = scale(gw, "duo", 2)
    replicas = status["replicas"]
    assert [(r["replica"], r["state"]) for r in replicas] == [(0, "ready"), (1, "ready")]
    assert replicas[0]["pid"] != replicas[1]["pid"] and all(r["address"] for r in replicas)
    assert status["state"] == "ready" and status["scaling"]["target"] == 2
    assert status["measured_mib"] >= max(r["measured_mib"] or 0 for r in replicas)  # the sum


def test_concurrent_requests_spread_over_both(gw: Gateway) -> None:
    scale(gw, "duo", 2)
    before = served(gw, "duo")

    def one(i: int) -> None:
        stream = oai(gw).chat.completions.create(
            model="duo", messages=[{"role": "user", "content": f"prompt {i}"}], max_tokens=20, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    after = served(gw, "duo")
    counts = [after[i] - before.get(i, 0) for i in (0, 1)]
    assert sum(counts) == 8 and min(counts) >= 2, counts


def test_one_session_stays_on_one_replica(gw: Gateway) -> None:
    scale(gw, "duo", 2)
    for session in ("alice", "bob", "carol", "dave"):
        before = served(gw, "duo")
        with gw.client() as http:
            for _ in range(4):
                body = {"model": "duo", "messages": HI, "max_tokens": 2}
                assert (
                    http.post(
                        "/v1/chat/completions", json=body, headers={"X-Session-Id": session}
                    ).status_code
                    == 200
                )
        after = served(gw, "duo")
        assert sorted(after[i] - before.get(i, 0) for i in (0, 1)) == [0, 4], session
    # the OpenAI ``user`` field is a session too
    before = served(gw, "duo")
    for _ in range(4):
        oai(gw).chat.completions.create(model="duo", messages=HI, max_tokens=2, user="erin")
    after = served(gw, "duo")
    assert sorted(after[i] - before.get(i, 0) for i in (0, 1)) == [0, 4]


def test_replica_metrics_carry_a_replica_label(gw: Gateway) -> None:
    scale(gw, "duo", 2)
    oai(gw).chat.completions.create(model="duo", messages=HI, max_tokens=2, user="to-one")
    oai(gw).chat.completions.create(model="duo", messages=HI, max_tokens=2, user="to-other")
    with gw.client() as http:
        families = list(text_string_to_metric_families(http.get("/metrics").text))  # parses: no duplicates
    replicas = {
        s.labels.get("replica", "0")
        for f in families
        for s in f.samples
        if s.name == "nanoserve_generation_requests_total" and s.labels.get("model") == "duo"
    }
    assert replicas == {"0", "1"}


def test_a_killed_replica_breaks_only_its_streams_and_is_replaced(gw: Gateway) -> None:
    scale(gw, "duo", 2)
    victim = next(r for r in model(gw, "duo")["replicas"] if r["replica"] == 1)["pid"]
    events: dict[int, list[str]] = {}

    def stream(i: int) -> None:
        lines = events.setdefault(i, [])
        with (
            httpx.Client(base_url=gw.url, timeout=60) as http,
            http.stream(
                "POST",
                "/v1/chat/completions",
                json={
                    "model": "duo",
                    "messages": [{"role": "user", "content": f"s{i}"}],
                    "max_tokens": 400,
                    "stream": True,
                },
            ) as resp,
        ):
            lines.extend(line for line in resp.iter_lines() if line.startswith("data: "))

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    assert wait_until(lambda: sum(len(v) for v in events.values()) >= 20, 20)
    os.kill(victim, signal.SIGKILL)
    for t in threads:
        t.join(60)
    broken = [v for v in events.values() if v and '"error"' in v[-1]]
    whole = [v for v in events.values() if v and v[-1] == "data: [DONE]"]
    assert broken and whole and len(broken) + len(whole) == 4
    assert "not reachable" in json.loads(broken[0][-1][6:])["error"]["message"]
    for _ in range(4):  # new requests are served, by the other replica or the replacement
        assert oai(gw).chat.completions.create(model="duo", messages=HI, max_tokens=2).choices
    assert wait_until(lambda: not pid_alive(victim), 10)
    assert wait_until(lambda: [r["state"] for r in model(gw, "duo")["replicas"]] == ["ready", "ready"], 30), (
        model(gw, "duo")
    )


def test_scale_to_zero_then_back_to_automatic(gw: Gateway) -> None:
    pids = [r["pid"] for r in scale(gw, "duo", 2)["replicas"]]
    status = scale(gw, "duo", 0)
    assert status["state"] == "stopped" and all(r["state"] == "stopped" for r in status["replicas"])
    assert not any(pid_alive(p) for p in pids)
    scale(gw, "duo", None)
    assert oai(gw).chat.completions.create(model="duo", messages=HI, max_tokens=2).choices  # on demand again
    assert [r["state"] for r in model(gw, "duo")["replicas"]] == ["ready"]


def test_a_queue_adds_a_replica_and_idleness_removes_it(gw: Gateway) -> None:
    def one() -> None:
        oai(gw).chat.completions.create(model="elastic", messages=HI, max_tokens=60)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    assert wait_until(
        lambda: len([r for r in model(gw, "elastic")["replicas"] if r["state"] == "ready"]) == 2, 30
    )
    for t in threads:
        t.join(60)
    counts = served(gw, "elastic")
    assert counts.get(1, 0) >= 1  # the new replica took part of the queue
    assert wait_until(lambda: [r["state"] for r in model(gw, "elastic")["replicas"]] == ["ready"], 20)
    assert model(gw, "elastic")["unloads"].get("scale_down") == 1


def test_scale_refuses_nonsense(gw: Gateway) -> None:
    with gw.client() as http:
        for body in ({"model": "duo", "replicas": -1}, {"model": "duo", "replicas": 65}, {"model": "duo"}):
            assert http.post("/models/scale", json=body).status_code == 400
        assert http.post("/models/scale", json={"model": "nope", "replicas": 1}).status_code == 404


def test_cli_status_lists_replicas(gw: Gateway, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nanoserve.cli.main import cli

    scale(gw, "duo", 2)
    result = CliRunner().invoke(cli, ["models", "status", "--url", gw.url])
    assert result.exit_code == 0, result.output
    assert "#1 ram pid" in result.output
    result = CliRunner().invoke(cli, ["models", "scale", "duo", "1", "--url", gw.url])
    assert result.exit_code == 0 and "#0 ready" in result.output, result.output
