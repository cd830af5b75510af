"""The gateway's /metrics after real traffic: counters and histograms move by what was served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway import Gateway
from prom import has, parse, value

TTFT_MS = 20
CONFIG = {
    "models": [
        {
            "id": "mock-chat",
            "aliases": ["mc"],
            "engine": "mock",
            "kind": "chat",
            "context_length": 512,
            "options": {"tokens_per_second": 500, "ttft_ms": TTFT_MS},
        },
        {"id": "mock-embed", "engine": "mock-embedding", "kind": "embedding"},
    ],
    "memory": {"warm_up": False},  # engine batch stats are counted exactly: no warm-up requests
}
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("metrics"), CONFIG)
    yield gateway
    gateway.stop()


def scrape(http: httpx.Client) -> dict:
    resp = http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return parse(resp.text)


def chat(content: str, max_tokens: int, **extra: object) -> dict:
    return {
        "model": "mock-chat",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        **extra,
    }


def stream_events(http: httpx.Client, body: dict) -> list[dict]:
    with http.stream("POST", CHAT, json=body) as resp:
        assert resp.status_code == 200
        return [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: {")]


def test_traffic_moves_counters_and_histograms(gw: Gateway) -> None:
    with gw.client() as http:
        before = scrape(http)
        assert value(before, "nanoserve_requests_total", route=CHAT) == 0
        assert value(before, "nanoserve_model_loads_total", model="mock-chat") == 0
        assert value(before, "nanoserve_model_state", model="mock-chat", state="stopped") == 1
        assert value(before, "nanoserve_rejections_total", model="mock-chat", reason="queue_full") == 0

        prompt = completion = 0
        for i, max_tokens in enumerate((3, 6, 9)):  # the first one loads the model
            usage = http.post(CHAT, json=chat(f"question {i}", max_tokens)).json()["usage"]
            prompt, completion = prompt + usage["prompt_tokens"], completion + usage["completion_tokens"]
        events = stream_events(http, chat("streamed", 4, stream=True, stream_options={"include_usage": True}))
        usage = next(e["usage"] for e in events if e.get("usage"))
        prompt, completion = prompt + usage["prompt_tokens"], completion + usage["completion_tokens"]
        events = stream_events(http, chat("streamed", 5, stream=True))  # same prompt, no usage sent
        prompt += usage["prompt_tokens"]
        completion += sum(1 for e in events if e["choices"] and e["choices"][0]["delta"].get("content"))
        embedded = http.post(
            "/v1/embeddings", json={"model": "mock-embed", "input": ["a b", "c", "d e f"]}
        ).json()
        # three requests turned away: invalid in the gateway, unknown model, too long for the worker
        assert http.post(CHAT, json=chat("x", 5, temperature="hot")).status_code == 400
        assert http.post(CHAT, json={**chat("x", 5), "model": "nope"}).status_code == 404
        assert http.post(CHAT, json=chat("x", 100_000)).status_code == 400

        after = scrape(http)

    # gateway: requests, durations, queue waits, first tokens
    assert value(after, "nanoserve_requests_total", route=CHAT, model="mock-chat", status="200") == 5
    assert value(after, "nanoserve_requests_total", route=CHAT, status="400") == 2
    assert value(after, "nanoserve_requests_total", route=CHAT, status="404") == 1
    assert value(after, "nanoserve_request_duration_seconds_count", route=CHAT, model="mock-chat") == 6
    assert value(after, "nanoserve_queue_wait_seconds_count", model="mock-chat") == 6
    assert value(after, "nanoserve_queue_wait_seconds_count", model="mock-chat", cold_start="true") == 1
    assert value(after, "nanoserve_gateway_time_to_first_token_seconds_count", model="mock-chat") == 2
    assert (
        value(after, "nanoserve_gateway_time_to_first_token_seconds_bucket", model="mock-chat", le="0.01")
        == 0
    )
    assert value(after, "nanoserve_requests_running", model="mock-chat") == 0
    assert value(after, "nanoserve_requests_waiting", model="mock-chat") == 0
    assert value(after, "nanoserve_rejections_total", reason="bad_request") == 3
    assert value(after, "nanoserve_rejections_total", model="mock-chat", reason="bad_request") == 1
    # lifecycle and memory
    assert value(after, "nanoserve_model_loads_total", model="mock-chat") == 1
    assert value(after, "nanoserve_model_load_duration_seconds_count", model="mock-chat") == 1
    assert value(after, "nanoserve_model_state", model="mock-chat", state="ready") == 1
    assert value(after, "nanoserve_model_state", model="mock-chat", state="stopped") == 0
    assert value(after, "nanoserve_model_memory_bytes", model="mock-chat") > 0
    used = value(after, "nanoserve_memory_used_bytes", device="ram")
    assert used >= value(after, "nanoserve_model_memory_bytes", model="mock-chat") > 0
    assert value(after, "nanoserve_memory_budget_bytes", device="ram") > used
    # merged from the workers: tokens, engine TTFT, embedding batches
    assert value(after, "nanoserve_prompt_tokens_total", model="mock-chat") == prompt
    assert (
        value(after, "nanoserve_generated_tokens_total", model="mock-chat") == completion == 3 + 6 + 9 + 4 + 5
    )
    assert value(after, "nanoserve_time_to_first_token_seconds_count", model="mock-chat") == 5
    assert value(after, "nanoserve_time_to_first_token_seconds_bucket", model="mock-chat", le="0.01") == 0
    assert (
        value(after, "nanoserve_prompt_tokens_total", model="mock-embed")
        == embedded["usage"]["prompt_tokens"]
    )
    assert value(after, "nanoserve_embedding_batch_size_count", model="mock-embed") == 1
    assert value(after, "nanoserve_embedding_batch_size_sum", model="mock-embed") == 3


def test_families_of_several_workers_share_one_header(gw: Gateway) -> None:
    with gw.client() as http:
        http.post(CHAT, json=chat("x", 2)).raise_for_status()
        http.post("/v1/embeddings", json={"model": "mock-embed", "input": "x"}).raise_for_status()
        text = http.get("/metrics").text
    assert text.count("# TYPE nanoserve_prompt_tokens_total counter") == 1
    assert text.count("# HELP nanoserve_prompt_tokens_total ") == 1
    samples = parse(text)  # a duplicate sample or a broken line would raise here
    assert has(samples, "nanoserve_prompt_tokens_total", model="mock-chat")
    assert has(samples, "nanoserve_prompt_tokens_total", model="mock-embed")


def test_request_id_is_returned_and_accepted(gw: Gateway) -> None:
    with gw.client() as http:
        made = http.get("/v1/models").headers["x-request-id"]
        assert len(made) == 32
        given = http.post(CHAT, json=chat("x", 2), headers={"X-Request-Id": "client-id-7"})
        assert given.headers["x-request-id"] == "client-id-7"
        bad = http.get("/health", headers={"X-Request-Id": "has spaces in it"}).headers["x-request-id"]
        assert bad != "has spaces in it" and len(bad) == 32
        error = http.post(CHAT, json={**chat("x", 2), "model": "nope"}, headers={"X-Request-Id": "err-1"})
        assert error.status_code == 404 and error.headers["x-request-id"] == "err-1"


def test_request_log_lines_carry_the_request(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, {**CONFIG, "log_format": "json"})
    try:
        with gw.client() as http:
            http.post(
                CHAT,
                json=chat("x", 3, stream=True, stream_options={"include_usage": True}),
                headers={"X-Request-Id": "stream-1"},
            ).raise_for_status()
            http.post(CHAT, json=chat("x", 4), headers={"X-Request-Id": "plain-1"}).raise_for_status()
            http.post(CHAT, json=chat("x", 100_000), headers={"X-Request-Id": "bad-1"})
            ollama = {
                "model": "mock-chat",
                "messages": [{"role": "user", "content": "x"}],
                "options": {"num_predict": 5},
            }
            http.post("/api/chat", json=ollama, headers={"X-Request-Id": "ollama-1"}).raise_for_status()
    finally:
        gw.stop()
    lines = [json.loads(line) for line in gw.log_path.read_text().splitlines() if line.startswith("{")]
    by_id = {line["request_id"]: line for line in lines if line["logger"] == "nanoserve.access"}
    streamed, plain, bad, ollama = by_id["stream-1"], by_id["plain-1"], by_id["bad-1"], by_id["ollama-1"]
    assert streamed["route"] == CHAT and streamed["model"] == "mock-chat" and streamed["status"] == 200
    assert streamed["completion_tokens"] == 3 and streamed["prompt_tokens"] > 0
    assert streamed["cold_start"] is True and streamed["queue_ms"] > 0
    assert streamed["duration_ms"] >= streamed["ttft_ms"] >= TTFT_MS
    assert plain["completion_tokens"] == 4 and "ttft_ms" not in plain and "cold_start" not in plain
    assert bad["status"] == 400 and bad["rejection"] == "bad_request" and "context length" in bad["error"]
    assert (
        ollama["route"] == "/api/chat" and ollama["model"] == "mock-chat" and ollama["completion_tokens"] == 5
    )
    assert (
        ollama["duration_ms"] >= ollama["ttft_ms"] >= TTFT_MS - 2
    )  # (the worker's uvloop timers may fire early)
    loaded = [line for line in lines if line["logger"] == "nanoserve.lifecycle" and line["event"] == "loaded"]
    assert [line["model"] for line in loaded] == ["mock-chat"] and loaded[0]["load_seconds"] > 0
    unloads = [line for line in lines if line.get("event") == "unload"]
    assert [(line["model"], line["reason"]) for line in unloads] == [("mock-chat", "shutdown")]
