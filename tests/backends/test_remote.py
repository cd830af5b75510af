"""``engine: remote``: another nanoserve as the upstream, through a recording tap, behind both APIs.

client ──▶ gateway (remote models) ──▶ tap (records) ──▶ upstream ``nanoserve serve`` (mock engines)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from gateway import MOCK_CONFIG, Gateway, free_port
from tap import Tap

KEY_ENV = "NANOSERVE_TEST_UPSTREAM_KEY"
KEY = "upstream-key-7d1f0c"  # a stand-in secret: it must never show up where it should not
CLIENT_KEY = "client-key-93be11"
HI = [{"role": "user", "content": "hi"}]


def remote(id: str, upstream_model: str, url: str, **options: Any) -> dict[str, Any]:
    kind = "embedding" if "embed" in upstream_model else "chat"
    base = {"base_url": f"{url}/v1", "api_key_env": KEY_ENV, "upstream_model": upstream_model}
    return {"id": id, "engine": "remote", "kind": kind, "options": {**base, **options}}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("upstream"), MOCK_CONFIG)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def tap(upstream: Gateway) -> Iterator[Tap]:
    tap = Tap(upstream.url).start()
    yield tap
    tap.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, tap: Tap) -> Iterator[Gateway]:
    models = [
        remote("team-chat", "mock-chat", tap.url, max_concurrent=2),
        remote("team-embed", "mock-embed", tap.url),
        remote("team-missing", "no-such-model", tap.url),
    ]
    gateway = Gateway(tmp_path_factory.mktemp("front"), {"models": models}, env={KEY_ENV: KEY})
    yield gateway
    gateway.stop()


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=120)


def olla(gw: Gateway) -> ollama.Client:
    return ollama.Client(host=gw.url, timeout=120, headers={"Authorization": f"Bearer {CLIENT_KEY}"})


def test_remote_models_serve_both_apis(gw: Gateway, tap: Tap) -> None:
    client = oai(gw)
    answer = client.chat.completions.create(model="team-chat", messages=HI, max_tokens=5)
    assert answer.choices[0].message.content and answer.usage and answer.usage.completion_tokens == 5
    chunks = list(
        client.chat.completions.create(
            model="team-chat", messages=HI, max_tokens=5, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    vectors = client.embeddings.create(model="team-embed", input=["a", "b"]).data
    assert len(vectors) == 2 and len(vectors[0].embedding) > 0

    reply = olla(gw).chat(model="team-chat", messages=HI, options={"num_predict": 4})
    assert reply.message.content and reply.eval_count == 4
    parts = list(olla(gw).chat(model="team-chat", messages=HI, options={"num_predict": 4}, stream=True))
    assert parts[-1].done and parts[-1].eval_count == 4
    assert len(olla(gw).embed(model="team-embed", input=["x"]).embeddings) == 1
    assert {"team-chat:latest", "team-embed:latest"} <= {m.model for m in olla(gw).list().models}

    sent = [s for s in tap.seen if s.body]
    assert {s.body["model"] for s in sent} == {"mock-chat", "mock-embed"}  # type: ignore[index]
    assert not any("keep_alive" in s.body or "return_context" in s.body for s in sent)  # type: ignore[operator]


def test_the_upstream_key_is_sent_and_the_clients_never(gw: Gateway, tap: Tap) -> None:
    oai(gw).chat.completions.create(model="team-chat", messages=HI, max_tokens=2)
    assert tap.seen and {s.authorization for s in tap.seen} == {f"Bearer {KEY}"}


def test_upstream_4xx_is_passed_through_in_each_dialect(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError, match="no-such-model"):
        oai(gw).chat.completions.create(model="team-missing", messages=HI)
    with pytest.raises(ollama.ResponseError) as caught:
        olla(gw).chat(model="team-missing", messages=HI)
    assert caught.value.status_code == 404 and "no-such-model" in caught.value.error


def test_the_concurrency_cap_holds(gw: Gateway, tap: Tap) -> None:
    tap.max_in_flight = 0
    results: list[str] = []

    def one() -> None:
        stream = oai(gw).chat.completions.create(model="team-chat", messages=HI, max_tokens=60, stream=True)
        results.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 6 and all(results)
    assert tap.max_in_flight == 2  # max_concurrent: the other four waited in the gateway


def test_upstream_down_is_a_503_naming_it_then_served_again(
    gw: Gateway, upstream: Gateway, tmp_path: Path
) -> None:
    """Runs last in this module: it replaces the upstream."""
    port = free_port()
    tap = Tap(upstream.url, port=port).start()
    models = [remote("flaky", "mock-chat", tap.url)]
    front = Gateway(tmp_path / "front", {"models": models}, env={KEY_ENV: KEY})
    try:
        assert oai(front).chat.completions.create(model="flaky", messages=HI, max_tokens=2).choices
        tap.stop()
        for attempt in range(2):  # the first sees the refused connection; the second, a failed probe
            with pytest.raises(openai.APIStatusError) as caught:
                oai(front).chat.completions.create(model="flaky", messages=HI, max_tokens=2)
            error = caught.value
            assert error.status_code == 503, attempt
            assert f"127.0.0.1:{port}" in error.message and error.response.headers["retry-after"]
        with pytest.raises(ollama.ResponseError) as down:
            olla(front).chat(model="flaky", messages=HI)
        assert down.value.status_code == 503 and f"127.0.0.1:{port}" in down.value.error

        tap = Tap(upstream.url, port=port).start()
        assert served_within(front, 15.0)  # as a client would: retrying after Retry-After
        assert f"Bearer {KEY}" in {s.authorization for s in tap.seen}
        with httpx.Client(base_url=front.url) as http:
            shown = http.get("/metrics").text + http.get("/models/status").text
        assert KEY not in shown and KEY not in front.log_path.read_text()
    finally:
        front.stop()
        tap.stop()


def served_within(gw: Gateway, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return bool(oai(gw).chat.completions.create(model="flaky", messages=HI, max_tokens=2).choices)
        except openai.APIStatusError as exc:
            wait = float(exc.response.headers.get("retry-after", "1"))
            if exc.status_code != 503 or time.monotonic() + wait > deadline:
                raise
            time.sleep(wait)


def test_the_key_never_shows_in_logs_errors_or_metrics(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url) as http:
        shown = (
            http.get("/metrics").text
            + http.get("/models/status").text
            + http.post("/v1/chat/completions", json={"model": "team-missing", "messages": HI}).text
            + http.get("/api/ps").text
        )
    assert KEY not in shown
    assert KEY not in gw.log_path.read_text() and CLIENT_KEY not in gw.log_path.read_text()
