"""The bench against a real HTTP server: measured figures versus what the server was told to do.

Time bounds are lower bounds (a sleep never ends early) or generous upper bounds for a loaded
2-core machine: these tests check the computation, not the speed.
"""

from __future__ import annotations

import math

import pytest
from bench_target import BenchTarget
from fake_openai import CHAT_TEMPLATE_TOKENS, FakeBehaviour, FakeServer

from nanoserve.bench.metrics import EmbeddingMetrics, GenerationMetrics, RequestResult, tpot
from nanoserve.bench.runner import BenchConfig, BenchRunner, RunResult, probe_error
from nanoserve.bench.workload import arrival_offsets, derive_seed
from nanoserve.errors import BadRequest, ModelNotFound, Unavailable

SLACK_S = 1.5  # generous upper slack for a busy machine


def config(target_url: str, model: str, **overrides) -> BenchConfig:
    values = {
        "base_url": target_url,
        "model": model,
        "num_prompts": 6,
        "input_len": 10,
        "output_len": 8,
        "seed": 1,
    }
    values.update(overrides)
    return BenchConfig(**values)  # type: ignore[arg-type]


async def run(cfg: BenchConfig) -> list[RunResult]:
    return await BenchRunner(cfg).run()


def gen(run: RunResult) -> GenerationMetrics:
    assert isinstance(run.metrics, GenerationMetrics)
    return run.metrics


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
async def test_paced_stream_figures_match_the_server(paced_target: BenchTarget, endpoint: str) -> None:
    cfg = config(
        paced_target.base_url, paced_target.chat_model, endpoint=endpoint, concurrencies=(2,), ignore_eos=True
    )
    [result] = await run(cfg)
    m = gen(result)
    ttft_s = paced_target.ttft_ms / 1000
    interval_s = 1 / paced_target.tokens_per_second
    assert (m.completed, m.failed, m.truncated) == (6, 0, 0)
    assert m.total_output_tokens == 6 * 8
    for r in result.requests:
        assert r.output_tokens == 8 and len(r.itl) == 7
        assert ttft_s * 0.95 <= r.ttft <= ttft_s + SLACK_S
        # E2EL = TTFT + the gaps; TPOT is their mean when every chunk is one token
        assert r.latency == pytest.approx(r.ttft + sum(r.itl))
        assert tpot(r) == pytest.approx(sum(r.itl) / 7)
    # the server paces tokens against its clock, so the median gap holds even when the loop is late
    # (a late token makes the next gaps shorter, so the mean is the robust lower bound)
    assert interval_s * 0.8 <= m.itl.mean / 1000
    assert m.itl.median / 1000 <= interval_s + SLACK_S
    assert interval_s * 0.8 <= m.tpot.mean / 1000 <= interval_s + SLACK_S
    assert m.e2el.mean / 1000 >= ttft_s + 7 * interval_s * 0.9
    assert m.max_concurrent_requests == 2
    # three waves of two requests, each at least TTFT + 7 gaps long
    assert m.duration >= 3 * (ttft_s + 7 * interval_s) * 0.9
    assert m.request_throughput == pytest.approx(6 / m.duration)
    assert m.output_throughput == pytest.approx(48 / m.duration)
    assert m.total_token_throughput == pytest.approx((m.total_input_tokens + 48) / m.duration)
    assert 0 < m.max_output_tokens_per_s <= 48


async def test_sweep_gives_one_run_per_concurrency_within_its_limit(paced_target: BenchTarget) -> None:
    cfg = config(
        paced_target.base_url, paced_target.chat_model, num_prompts=8, output_len=4, concurrencies=(1, 2, 4)
    )
    runs = await run(cfg)
    assert [r.max_concurrency for r in runs] == [1, 2, 4]
    for r in runs:
        assert gen(r).completed == 8
        assert gen(r).max_concurrent_requests == r.max_concurrency  # every request outlasts the ramp-up


async def test_concurrency_limit_holds_at_the_server(fake: FakeServer) -> None:
    fake.state.reset(FakeBehaviour(ttft_ms=300))  # long enough for each wave to overlap on a busy machine
    cfg = config(fake.base_url, fake.chat_model, num_prompts=9, output_len=3, concurrencies=(3,))
    await run(cfg)
    assert fake.state.peak_in_flight == 3


async def test_unlimited_concurrency_sends_everything_at_once(fake: FakeServer) -> None:
    fake.state.reset(FakeBehaviour(ttft_ms=300))
    cfg = config(fake.base_url, fake.chat_model, num_prompts=7, output_len=3)
    [result] = await run(cfg)
    assert gen(result).max_concurrent_requests == 7
    assert fake.state.peak_in_flight == 7


async def test_poisson_arrivals_follow_the_seeded_schedule(fake: FakeServer) -> None:
    cfg = config(fake.base_url, fake.chat_model, num_prompts=10, output_len=2, request_rate=25.0)
    [result] = await run(cfg)
    offsets = arrival_offsets(10, 25.0, derive_seed(cfg.seed, "arrivals", None))
    first = min(r.start_time for r in result.requests)
    sent = sorted(r.start_time - first for r in result.requests)
    for measured, planned in zip(sent, offsets):
        assert measured >= planned - 0.005  # a request is never sent before its arrival time
    assert gen(result).duration >= offsets[-1]


async def test_goodput_against_slos(paced_target: BenchTarget) -> None:
    base = {"num_prompts": 4, "output_len": 3, "concurrencies": (4,)}
    [loose] = await run(config(paced_target.base_url, paced_target.chat_model, slos={"ttft": 60_000}, **base))
    [strict] = await run(config(paced_target.base_url, paced_target.chat_model, slos={"ttft": 1}, **base))
    [none] = await run(config(paced_target.base_url, paced_target.chat_model, **base))
    assert gen(loose).request_goodput == pytest.approx(gen(loose).request_throughput)
    assert gen(strict).request_goodput == 0.0  # the server's TTFT alone is 100 ms
    assert gen(none).request_goodput is None


async def test_input_tokens_come_from_the_server_usage(fake: FakeServer) -> None:
    [result] = await run(config(fake.base_url, fake.chat_model, num_prompts=3, input_len=12))
    assert gen(result).total_input_tokens == 3 * (12 + CHAT_TEMPLATE_TOKENS)
    assert result.usage_reported


async def test_without_usage_output_tokens_are_chunks(fake: FakeServer) -> None:
    fake.state.reset(FakeBehaviour(send_usage=False))
    [result] = await run(config(fake.base_url, fake.chat_model, num_prompts=3, input_len=12, output_len=5))
    m = gen(result)
    assert m.total_output_tokens == 15 and not result.usage_reported
    assert m.total_input_tokens == 3 * 12  # the client's estimate


async def test_cut_streams_are_reported_truncated(fake: FakeServer) -> None:
    fake.state.reset(FakeBehaviour(cut_after=3))
    [result] = await run(config(fake.base_url, fake.chat_model, num_prompts=4, output_len=6))
    m = gen(result)
    assert (m.completed, m.truncated, m.total_output_tokens) == (4, 4, 12)


@pytest.mark.parametrize(("ignore_eos", "tokens", "truncated"), [(False, 3, 0), (True, 6, 0)])
async def test_ignore_eos_is_sent(fake: FakeServer, ignore_eos: bool, tokens: int, truncated: int) -> None:
    fake.state.reset(FakeBehaviour(eos_after=3))
    [result] = await run(
        config(fake.base_url, fake.chat_model, num_prompts=2, output_len=6, ignore_eos=ignore_eos)
    )
    assert gen(result).total_output_tokens == 2 * tokens
    assert gen(result).truncated == truncated


async def test_error_events_count_as_failures(fake: FakeServer) -> None:
    fake.state.reset(FakeBehaviour(error_after=5))
    runner = BenchRunner(config(fake.base_url, fake.chat_model, num_prompts=3, output_len=6))
    # the check request asks for fewer tokens than the error needs, so only the run fails
    [result] = await runner.run()
    assert (gen(result).completed, gen(result).failed) == (0, 3)
    assert result.errors == {"error event in stream: engine exploded": 3}


async def test_embeddings_with_batches(fake: FakeServer) -> None:
    fake.state.reset(FakeBehaviour(embed_delay_ms=30))
    cfg = config(
        fake.base_url,
        fake.embedding_model,
        endpoint="embeddings",
        num_prompts=6,
        batch_size=4,
        input_len=5,
        concurrencies=(2,),
    )
    [result] = await run(cfg)
    m = result.metrics
    assert isinstance(m, EmbeddingMetrics)
    assert (m.completed, m.failed, m.total_input_sequences, m.total_input_tokens) == (6, 0, 24, 120)
    assert m.input_sequence_throughput == pytest.approx(24 / m.duration)
    assert m.request_throughput == pytest.approx(6 / m.duration)
    assert m.e2el.median >= 30 * 0.95
    assert fake.state.peak_in_flight <= 2
    assert all(len(body["input"]) == 4 for body in fake.state.bodies)


async def test_unknown_model_fails_before_the_run(fake: FakeServer) -> None:
    with pytest.raises(ModelNotFound, match="nope"):
        await run(config(fake.base_url, "nope"))
    assert len(fake.state.bodies) == 1  # only the check request was sent


async def test_unreachable_server(unused_tcp_port: int) -> None:
    with pytest.raises(Unavailable, match="cannot reach"):
        await run(config(f"http://127.0.0.1:{unused_tcp_port}", "m"))


async def test_wrong_api_key(fake: FakeServer) -> None:
    fake.state.reset(FakeBehaviour(api_key="sesame"))
    with pytest.raises(BadRequest, match="api-key"):
        await run(config(fake.base_url, fake.chat_model))
    [result] = await run(
        config(fake.base_url, fake.chat_model, num_prompts=2, output_len=2, api_key="sesame")
    )
    assert gen(result).completed == 2


def _failed(status: int | None, error: str) -> RequestResult:
    return RequestResult(status=status, error=error)


@pytest.mark.parametrize(
    ("status", "error", "kind", "text"),
    [
        (None, "ConnectError: refused", Unavailable, "cannot reach http://127.0.0.1:9/v1/chat/completions"),
        (404, "HTTP 404: The model 'm' does not exist.", ModelNotFound, "'m'"),
        (404, "HTTP 404: model 'm' not found", ModelNotFound, "'m'"),
        (404, "HTTP 404: Not Found", BadRequest, "--base-url"),
        (401, "HTTP 401: invalid api key", BadRequest, "--api-key"),
        (400, "HTTP 400: max_tokens too large", BadRequest, "max_tokens too large"),
        (503, "HTTP 503: no room", Unavailable, "no room"),
        (200, "the stream carried no token", BadRequest, "no token"),
    ],
)
def test_probe_error(status: int | None, error: str, kind: type, text: str) -> None:
    cfg = BenchConfig(base_url="http://127.0.0.1:9", model="m")
    exc = probe_error(cfg, _failed(status, error))
    assert type(exc) is kind and text in exc.message


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        BenchConfig(base_url="http://127.0.0.1:9", model="m", concurrencies=(0,))
    with pytest.raises(ValueError):
        BenchConfig(base_url="127.0.0.1:9", model="m")
    assert (
        BenchConfig(base_url="http://h:1/v1/", model="m", request_rate=math.inf).url
        == "http://h:1/v1/chat/completions"
    )
