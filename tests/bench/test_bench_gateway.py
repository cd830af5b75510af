"""``nanoserve bench`` against a real gateway: paced mock models, then one short real-model run.

The mock chat model is told its TTFT and token rate (``engine: mock`` options ``ttft_ms`` and
``tokens_per_second``), so the figures the bench reports can be checked against them. Bounds
are lower bounds (a sleep never ends early) or generous upper bounds for a busy 2-core machine:
these tests check what the bench computes through the whole stack, not how fast it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from gateway import Gateway

from nanoserve.bench.metrics import EmbeddingMetrics, GenerationMetrics, tpot
from nanoserve.bench.runner import BenchConfig, BenchRunner, RunResult
from nanoserve.cli.bench import bench

TTFT_MS = 150.0
TOKENS_PER_SECOND = 40.0
SLACK_S = 1.5  # generous upper slack for a busy machine
CHAT = "paced-chat"
EMBED = "paced-embed"

PACED_CONFIG: dict[str, Any] = {
    "models": [
        {
            "id": CHAT,
            "engine": "mock",
            "kind": "chat",
            "context_length": 1024,
            "parallel": 8,
            "options": {"ttft_ms": TTFT_MS, "tokens_per_second": TOKENS_PER_SECOND},
        },
        {"id": EMBED, "engine": "mock-embedding", "kind": "embedding", "options": {"dimensions": 32}},
    ]
}


@pytest.fixture(scope="module")
def paced_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("paced"), PACED_CONFIG)
    yield gw
    gw.stop()


def config(url: str, model: str, **overrides: Any) -> BenchConfig:
    values: dict[str, Any] = {
        "base_url": url,
        "model": model,
        "num_prompts": 6,
        "input_len": 10,
        "output_len": 8,
        "seed": 3,
        "request_timeout": 60.0,
    }
    values.update(overrides)
    return BenchConfig(**values)


def gen(run: RunResult) -> GenerationMetrics:
    assert isinstance(run.metrics, GenerationMetrics)
    return run.metrics


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
async def test_paced_mock_figures_match_the_config(paced_gateway: Gateway, endpoint: str) -> None:
    cfg = config(paced_gateway.url, CHAT, endpoint=endpoint, concurrencies=(2,), ignore_eos=True)
    [result] = await BenchRunner(cfg).run()
    m = gen(result)
    ttft_s = TTFT_MS / 1000
    interval_s = 1 / TOKENS_PER_SECOND
    assert (m.completed, m.failed, m.truncated) == (6, 0, 0), result.errors
    assert result.usage_reported  # the gateway streams usage: tokens are the engine's count
    assert m.total_output_tokens == 6 * 8
    assert m.total_input_tokens >= 6 * 10  # the prompt words (plus the chat template's tokens)
    for r in result.requests:
        assert r.finish_reason == "length"
        assert r.output_tokens == 8 and len(r.itl) == 7  # one chunk per token, none merged
        assert ttft_s * 0.95 <= r.ttft <= ttft_s + SLACK_S
        assert r.latency == pytest.approx(r.ttft + sum(r.itl))
        assert tpot(r) == pytest.approx(sum(r.itl) / 7)
    # the engine paces tokens against its clock: a late token shortens the next gaps, so the mean
    # gap is the robust lower bound and the median the robust upper one
    assert interval_s * 0.8 <= m.itl.mean / 1000
    assert m.itl.median / 1000 <= interval_s + SLACK_S
    assert interval_s * 0.8 <= m.tpot.mean / 1000 <= interval_s + SLACK_S
    assert m.e2el.mean / 1000 >= (ttft_s + 7 * interval_s) * 0.95
    assert m.max_concurrent_requests == 2
    # three waves of two requests, each at least TTFT + 7 gaps long
    assert m.duration >= 3 * (ttft_s + 7 * interval_s) * 0.95
    assert m.output_throughput == pytest.approx(48 / m.duration)
    assert m.output_throughput <= 2 * TOKENS_PER_SECOND  # two streams, each paced at the rate


async def test_sweep_concurrency_reaches_the_gateway(paced_gateway: Gateway) -> None:
    cfg = config(paced_gateway.url, CHAT, num_prompts=8, output_len=4, concurrencies=(1, 4))
    one, four = await BenchRunner(cfg).run()
    assert (gen(one).completed, gen(four).completed) == (8, 8)
    assert gen(one).max_concurrent_requests == 1
    assert gen(four).max_concurrent_requests == 4  # the mock has 8 slots: all four run together


async def test_embeddings_through_the_gateway(paced_gateway: Gateway) -> None:
    cfg = config(paced_gateway.url, EMBED, endpoint="embeddings", batch_size=4, concurrencies=(2,))
    [result] = await BenchRunner(cfg).run()
    m = result.metrics
    assert isinstance(m, EmbeddingMetrics)
    assert (m.completed, m.failed, m.total_input_sequences) == (6, 0, 24), result.errors
    assert result.usage_reported and m.total_input_tokens > 0
    assert m.input_sequence_throughput == pytest.approx(24 / m.duration)
    assert m.max_concurrent_requests <= 2


def test_cli_saves_vllm_keys(paced_gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    args = [
        "--base-url", paced_gateway.url, "--model", CHAT, "--num-prompts", "4", "--input-len", "8",
        "--output-len", "5", "--ignore-eos", "--max-concurrency", "1,2", "--goodput", "ttft:60000",
        "--save-result", str(out), "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert [r["max_concurrency"] for r in doc["results"]] == [1, 2]
    for r in doc["results"]:
        assert (r["completed"], r["failed"], r["truncated"], r["total_output_tokens"]) == (4, 0, 0, 20)
        assert r["request_goodput"] == pytest.approx(r["request_throughput"])  # a 60 s TTFT SLO
        assert r["mean_ttft_ms"] >= TTFT_MS * 0.95
        assert r["mean_tpot_ms"] >= 1000 / TOKENS_PER_SECOND * 0.8


async def test_real_default_model_short_run(real_gateway: Gateway) -> None:
    cfg = config(
        real_gateway.url,
        "smollm2:135m",
        num_prompts=3,
        input_len=16,
        output_len=8,
        ignore_eos=True,
        concurrencies=(2,),
        request_timeout=120.0,
    )
    [result] = await BenchRunner(cfg).run()
    m = gen(result)
    assert (m.completed, m.failed, m.truncated) == (3, 0, 0), result.errors
    assert result.usage_reported and m.total_output_tokens == 3 * 8
    assert m.total_input_tokens >= 3 * 16
    assert m.ttft.mean > 0 and m.tpot.mean > 0 and m.itl.median > 0
    assert m.output_throughput > 0 and m.request_throughput > 0
