"""A worker's /metrics: per-request figures add up to what its answers said; engine stats export by shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prom import has, parse, value
from prometheus_client import CollectorRegistry, generate_latest

from nanoserve.engines.base import EngineSpec
from nanoserve.engines.mock import MockEmbeddingEngine, MockEngine
from nanoserve.wire.protocol import ChatCompletionRequest
from nanoserve.worker.app import create_worker_app
from nanoserve.worker.metrics import EngineStatsCollector, WorkerMetrics, WorkerTelemetry
from nanoserve.worker.serving import GenerationService

TTFT_MS = 30
TOKENS_PER_SECOND = 200  # 5 ms between tokens


async def _serve(engine: Any, name: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_worker_app(engine, name)
    transport = httpx.ASGITransport(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://w") as client,
    ):
        for _ in range(200):
            if (await client.get("/health")).status_code == 200:
                break
            await asyncio.sleep(0.01)
        yield client


@pytest.fixture
async def chat_worker() -> AsyncIterator[httpx.AsyncClient]:
    options = {"ttft_ms": TTFT_MS, "tokens_per_second": TOKENS_PER_SECOND}
    engine = MockEngine(EngineSpec(name="m", path=None, context_length=512, options=options))
    async for client in _serve(engine, "m"):
        yield client


@pytest.fixture
async def embed_worker() -> AsyncIterator[httpx.AsyncClient]:
    async for client in _serve(MockEmbeddingEngine(EngineSpec(name="e", path=None, kind="embedding")), "e"):
        yield client


def _usage_of_stream(text: str) -> dict[str, int]:
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    return next(e["usage"] for e in events if e.get("usage"))


async def test_generation_metrics_add_up_to_the_usage_answered(chat_worker: httpx.AsyncClient) -> None:
    before = parse((await chat_worker.get("/metrics")).text)
    assert value(before, "nanoserve_generated_tokens_total", model="m") == 0
    usages = []
    for max_tokens, content in ((3, "hi"), (5, "hello there"), (8, "one two three four")):
        body = {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
        resp = await chat_worker.post("/v1/chat/completions", json=body)
        usages.append(resp.json()["usage"])
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "streamed"}],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    usages.append(_usage_of_stream((await chat_worker.post("/v1/chat/completions", json=body)).text))

    after = parse((await chat_worker.get("/metrics")).text)
    assert value(after, "nanoserve_prompt_tokens_total", model="m") == sum(u["prompt_tokens"] for u in usages)
    assert value(after, "nanoserve_generated_tokens_total", model="m") == sum(
        u["completion_tokens"] for u in usages
    )
    assert value(after, "nanoserve_generated_tokens_total", model="m") == 3 + 5 + 8 + 4
    assert value(after, "nanoserve_prefix_cache_hit_tokens_total", model="m") == 0
    assert value(after, "nanoserve_generation_requests_total", model="m", finish_reason="length") == 4
    # every first token came after the configured 30 ms, every next one at least 5 ms later
    assert value(after, "nanoserve_time_to_first_token_seconds_count", model="m") == 4
    assert value(after, "nanoserve_time_to_first_token_seconds_bucket", model="m", le="0.025") == 0
    assert value(after, "nanoserve_time_to_first_token_seconds_sum", model="m") >= 4 * TTFT_MS / 1000
    assert value(after, "nanoserve_time_per_output_token_seconds_count", model="m") == 4
    assert value(after, "nanoserve_time_per_output_token_seconds_bucket", model="m", le="0.0025") == 0
    assert value(after, "nanoserve_worker_request_duration_seconds_count", model="m", kind="generation") == 4


async def test_stream_sends_the_role_with_the_first_token(chat_worker: httpx.AsyncClient) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2, "stream": True}
    text = (await chat_worker.post("/v1/chat/completions", json=body)).text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[1]["choices"][0]["delta"]["content"]  # the first token follows at once
    # (that the gateway's first chunk waits for the first token is checked in test_gateway_metrics)


async def test_abandoned_stream_counts_as_aborted_without_tokens() -> None:
    engine = MockEngine(
        EngineSpec(name="m", path=None, context_length=512, options={"tokens_per_second": 1000})
    )
    await engine.start()
    metrics = WorkerMetrics("m")
    service = GenerationService(engine)
    req = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 50, "stream": True}
    )
    probe = WorkerTelemetry(metrics).probe("/v1/chat/completions", {})
    gen, plan = service.prepare_chat(req)
    stream = service.stream(gen, model="m", chat=True, include_usage=False, probe=probe, plan=plan)
    for _ in range(3):
        await anext(stream)
    await stream.aclose()  # the client went away
    samples = parse(metrics.render().decode())
    assert value(samples, "nanoserve_generation_requests_total", model="m", finish_reason="aborted") == 1
    assert value(samples, "nanoserve_generated_tokens_total", model="m") == 0
    assert value(samples, "nanoserve_time_to_first_token_seconds_count", model="m") == 1


async def test_embedding_batch_sizes_come_from_the_engine(embed_worker: httpx.AsyncClient) -> None:
    tokens = 0
    for texts in (["a", "b c", "d"], ["single text here"], ["x"] * 5):
        resp = await embed_worker.post("/v1/embeddings", json={"model": "e", "input": texts})
        tokens += resp.json()["usage"]["prompt_tokens"]
    samples = parse((await embed_worker.get("/metrics")).text)
    bucket = "nanoserve_embedding_batch_size_bucket"
    assert [value(samples, bucket, model="e", le=le) for le in ("1.0", "2.0", "4.0", "8.0", "+Inf")] == [
        1,
        1,
        2,
        3,
        3,
    ]
    assert value(samples, "nanoserve_embedding_batch_size_sum", model="e") == 9
    assert value(samples, "nanoserve_embedding_inputs_total", model="e") == 9
    assert value(samples, "nanoserve_prompt_tokens_total", model="e") == tokens
    assert value(samples, "nanoserve_worker_request_duration_seconds_count", model="e", kind="embedding") == 3


def _collect(stats: dict[str, Any]) -> str:
    registry = CollectorRegistry()
    registry.register(EngineStatsCollector("m", lambda: stats))
    return generate_latest(registry).decode()


def test_engine_stats_become_families_by_the_shape_of_their_keys() -> None:
    stats = {  # the llama.cpp engine's shape, plus a batch-size histogram with unsorted bounds
        "requests_total": 7,
        "prefix_cache_hit_tokens_total": 120,
        "decode_steps_total": 5,
        "decode_step_tokens_total": 40,
        "decode_step_tokens_bucket": {"1": 1, "8": 3, "16": 5, "+Inf": 5},
        "batch_size_bucket": {"4": 5, "1": 2, "2": 4},  # no +Inf: added from the largest count
        "batch_size_sum": 11,
        "slots_busy": 3,
        "enabled": True,
        "name": "llama",
    }
    samples = parse(_collect(stats))
    assert value(samples, "nanoserve_engine_requests_total", model="m") == 7
    assert value(samples, "nanoserve_engine_prefix_cache_hit_tokens_total", model="m") == 120
    assert value(samples, "nanoserve_decode_step_tokens_sum", model="m") == 40
    assert value(samples, "nanoserve_decode_step_tokens_count", model="m") == 5
    assert [
        value(samples, "nanoserve_batch_size_bucket", model="m", le=le)
        for le in ("1.0", "2.0", "4.0", "+Inf")
    ] == [2, 4, 5, 5]
    assert value(samples, "nanoserve_batch_size_sum", model="m") == 11
    assert value(samples, "nanoserve_engine_slots_busy", model="m") == 3
    assert not has(samples, "nanoserve_engine_enabled") and not has(samples, "nanoserve_engine_name")
    assert not has(samples, "nanoserve_engine_batch_size_sum")


def test_engine_stats_failure_leaves_the_scrape_working() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("engine gone")

    registry = CollectorRegistry()
    registry.register(EngineStatsCollector("m", broken))
    assert generate_latest(registry) == b""
