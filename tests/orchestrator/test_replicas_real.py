"""Two replicas of the real default chat model: load spread, sessions, prefix-cache affinity."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from gateway import Gateway
from prometheus_client.parser import text_string_to_metric_families

from nanoserve.config import default_models

CHAT = default_models()[0]
# ~300 tokens of a system prompt that several questions share
SYSTEM = (
    "You are the help desk of a small library. Opening hours are nine to five on weekdays and ten to "
    "two on Saturdays. Members may borrow six books for three weeks and renew them twice online. "
) * 6


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    model = CHAT.model_dump(mode="json")
    model.update(parallel=4, context_length=1024, replicas={"max": 2})
    gateway = Gateway(tmp_path_factory.mktemp("replicas-real"), {"models": [model]}, start_timeout=120)
    with gateway.client(timeout=300) as http:
        answer = http.post("/models/scale", json={"model": CHAT.id, "replicas": 2})
        assert answer.status_code == 200, answer.text
    yield gateway
    gateway.stop()


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def served(gw: Gateway) -> dict[int, int]:
    with gw.client() as http:
        model = http.get("/models/status").json()["models"][0]
    return {r["replica"]: r["requests_total"] for r in model["replicas"]}


def delta(before: dict[int, int], after: dict[int, int]) -> list[int]:
    return [after.get(i, 0) - before.get(i, 0) for i in (0, 1)]


def prefix_hits(gw: Gateway) -> dict[str, float]:
    with gw.client() as http:
        text = http.get("/metrics").text
    hits: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "nanoserve_prefix_cache_hit_tokens_total":
                replica = s.labels.get("replica", "0")
                hits[replica] = hits.get(replica, 0.0) + s.value
    return hits


def test_sixteen_streams_are_spread_over_both_replicas(gw: Gateway) -> None:
    before = served(gw)
    texts: list[str] = []

    def one(i: int) -> None:
        stream = oai(gw).chat.completions.create(
            model=CHAT.id,
            messages=[
                {"role": "user", "content": f"Name a fruit that starts with the letter {chr(65 + i)}."}
            ],
            max_tokens=12,
            stream=True,
        )
        texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(texts) == 16 and all(texts)
    counts = delta(before, served(gw))
    assert sum(counts) == 16 and min(counts) >= 4, counts  # each serves at least a quarter


def test_a_session_lands_on_one_replica(gw: Gateway) -> None:
    before = served(gw)
    for i in range(4):
        oai(gw).chat.completions.create(
            model=CHAT.id,
            messages=[{"role": "user", "content": f"Count to {i + 2}."}],
            max_tokens=8,
            user="reader-7",
        )
    assert sorted(delta(before, served(gw))) == [0, 4]


def test_a_shared_system_prompt_lands_where_it_is_cached(gw: Gateway) -> None:
    def ask(question: str) -> Any:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        return oai(gw).chat.completions.create(model=CHAT.id, messages=messages, max_tokens=8, temperature=0)

    ask("When do you open on Saturday?")
    before, hits_before = served(gw), prefix_hits(gw)
    for question in ("How many books may I borrow?", "Can I renew online?", "How long is a loan?"):
        ask(question)
    counts = delta(before, served(gw))
    assert sorted(counts) == [0, 3], counts
    home = str(counts.index(3))
    hits = prefix_hits(gw)
    assert hits.get(home, 0) - hits_before.get(home, 0) >= 3 * 200  # the system prompt, not recomputed


def test_a_killed_replica_mid_stream(gw: Gateway) -> None:
    """SIGKILL one replica while both stream: its streams end with an error event, every new
    request is served, and the killed replica is replaced."""
    import json
    import os
    import signal

    import httpx
    from gateway import wait_until

    def replicas() -> list[dict[str, Any]]:
        with gw.client() as http:
            return http.get("/models/status").json()["models"][0]["replicas"]

    victim = next(r for r in replicas() if r["replica"] == 1)["pid"]
    events: dict[int, list[str]] = {}

    def stream(i: int) -> None:
        lines = events.setdefault(i, [])
        body = {
            "model": CHAT.id,
            "messages": [{"role": "user", "content": f"Tell a long story number {i}."}],
            "max_tokens": 200,
            "stream": True,
            "ignore_eos": True,
        }
        with (
            httpx.Client(base_url=gw.url, timeout=300) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as resp,
        ):
            lines.extend(line for line in resp.iter_lines() if line.startswith("data: "))

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    assert wait_until(lambda: sum(len(v) for v in events.values()) >= 30, 60)
    os.kill(victim, signal.SIGKILL)
    for t in threads:
        t.join(300)
    broken = [v for v in events.values() if v and '"error"' in v[-1]]
    whole = [v for v in events.values() if v and v[-1] == "data: [DONE]"]
    assert broken and whole and len(broken) + len(whole) == 6
    assert "not reachable" in json.loads(broken[0][-1][6:])["error"]["message"]
    for i in range(4):
        assert (
            oai(gw)
            .chat.completions.create(
                model=CHAT.id, messages=[{"role": "user", "content": f"Hi {i}"}], max_tokens=4
            )
            .choices
        )
    assert wait_until(lambda: [r["state"] for r in replicas()] == ["ready", "ready"], 60), replicas()
    assert next(r for r in replicas() if r["replica"] == 1)["pid"] != victim
