"""The metric math, by tables of cases (vLLM's definitions)."""

from __future__ import annotations

import math

import pytest

from nanoserve.bench.metrics import (
    RequestResult,
    Stats,
    embedding_metrics,
    generation_metrics,
    max_tokens_per_second,
    meets_slos,
    parse_slos,
    peak_concurrency,
    percentile_word,
    token_times,
    tpot,
)


def req(
    *,
    start: float = 0.0,
    ttft: float = 0.1,
    itl: list[float] | None = None,
    tokens: int | None = None,
    prompt: int = 10,
    success: bool = True,
    truncated: bool = False,
) -> RequestResult:
    itl = [] if itl is None else itl
    return RequestResult(
        success=success,
        start_time=start,
        ttft=ttft,
        itl=itl,
        latency=ttft + sum(itl),
        output_tokens=len(itl) + 1 if tokens is None else tokens,
        prompt_tokens=prompt,
        truncated=truncated,
    )


@pytest.mark.parametrize(
    ("latency", "ttft", "tokens", "expected"),
    [
        (1.0, 0.1, 10, 0.1),
        (1.0, 0.2, 2, 0.8),
        (1.0, 0.1, 1, None),  # one token: no TPOT
        (1.0, 0.1, 0, None),
        (0.5, 0.5, 5, 0.0),
    ],
)
def test_tpot(latency: float, ttft: float, tokens: int, expected: float | None) -> None:
    result = RequestResult(latency=latency, ttft=ttft, output_tokens=tokens)
    value = tpot(result)
    assert value == (None if expected is None else pytest.approx(expected))


def test_tpot_equals_mean_itl_when_every_chunk_is_one_token() -> None:
    r = req(ttft=0.3, itl=[0.01, 0.05, 0.02, 0.04])
    assert tpot(r) == pytest.approx(sum(r.itl) / len(r.itl))


@pytest.mark.parametrize(
    ("seconds", "mean", "median", "std", "p99"),
    [
        ([1.0, 2.0, 3.0, 4.0], 2500.0, 2500.0, math.sqrt(1.25) * 1000, 3970.0),  # linear interpolation
        ([0.5], 500.0, 500.0, 0.0, 500.0),
        ([], 0.0, 0.0, 0.0, 0.0),  # no data reports zeros, as vLLM does
        ([0.010, 0.030, 0.020], 20.0, 20.0, math.sqrt(200 / 3), 29.8),
    ],
)
def test_stats(seconds: list[float], mean: float, median: float, std: float, p99: float) -> None:
    stats = Stats.of(seconds)
    assert stats.mean == pytest.approx(mean)
    assert stats.median == pytest.approx(median)
    assert stats.std == pytest.approx(std)
    assert stats.percentile(99) == pytest.approx(p99)


def test_stats_flat_uses_vllm_keys() -> None:
    stats = Stats.of([0.1, 0.2], percentiles=(50, 99.9))
    assert set(stats.flat("ttft")) == {
        "mean_ttft_ms",
        "median_ttft_ms",
        "std_ttft_ms",
        "p50_ttft_ms",
        "p99.9_ttft_ms",
    }
    assert stats.flat("ttft")["p50_ttft_ms"] == pytest.approx(150.0)


@pytest.mark.parametrize(
    ("p", "word"), [(99, "99"), (99.0, "99"), (99.9, "99.9"), (50, "50"), (12.5, "12.5")]
)
def test_percentile_word(p: float, word: str) -> None:
    assert percentile_word(p) == word


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["ttft:500"], {"ttft": 500.0}),
        (["ttft:500", "tpot:50", "e2el:3000"], {"ttft": 500.0, "tpot": 50.0, "e2el": 3000.0}),
        (["TTFT:1.5"], {"ttft": 1.5}),
        ([], {}),
    ],
)
def test_parse_slos(pairs: list[str], expected: dict[str, float]) -> None:
    assert parse_slos(pairs) == expected


@pytest.mark.parametrize("bad", ["ttft", "itl:5", "ttft:fast", "ttft:-1", ":5", "e2el:nan"])
def test_parse_slos_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid SLO"):
        parse_slos([bad])


# ttft 0.2 s, 9 tokens over 1.0 s in all: TPOT = 0.8 / 8 = 0.1 s
_NINE = req(ttft=0.2, itl=[0.1] * 8)


@pytest.mark.parametrize(
    ("result", "slos", "good"),
    [
        (_NINE, {"ttft": 200}, True),  # an SLO met exactly is met
        (_NINE, {"ttft": 199}, False),
        (_NINE, {"tpot": 100}, True),
        (_NINE, {"tpot": 99}, False),
        (_NINE, {"e2el": 1000}, True),
        (_NINE, {"e2el": 999}, False),
        (_NINE, {"ttft": 500, "tpot": 500, "e2el": 999}, False),  # every SLO must hold
        (_NINE, {"ttft": 500, "tpot": 500, "e2el": 5000}, True),
        (req(ttft=0.2, tokens=1), {"tpot": 0}, True),  # one token: TPOT counts as 0
        (req(ttft=0.1, itl=[0.1], truncated=True), {"ttft": 1000}, False),  # truncated is never good
        (req(ttft=0.1, success=False), {"ttft": 1000}, False),
    ],
)
def test_meets_slos(result: RequestResult, slos: dict[str, float], good: bool) -> None:
    assert meets_slos(result, slos) is good


@pytest.mark.parametrize(
    ("intervals", "peak"),
    [
        ([], 0),
        ([(0, 1)], 1),
        ([(0, 1), (1, 2)], 1),  # half-open: one ends as the next starts
        ([(0, 2), (1, 3)], 2),
        ([(0, 10), (1, 2), (3, 4), (1.5, 3.5)], 3),
        ([(0, 5)] * 4, 4),
    ],
)
def test_peak_concurrency(intervals: list[tuple[float, float]], peak: int) -> None:
    assert peak_concurrency(intervals) == peak


def test_token_times_rebuild_chunk_arrivals() -> None:
    assert token_times(req(start=10.0, ttft=0.5, itl=[0.25, 0.25])) == pytest.approx([10.5, 10.75, 11.0])


@pytest.mark.parametrize(
    ("results", "peak"),
    [
        ([], 0.0),
        ([req(start=0.0, ttft=0.1, itl=[0.1] * 4)], 5.0),  # 5 tokens within the first second
        ([req(start=0.0, ttft=0.5, itl=[0.4] * 4)], 2.0),  # 0.5 0.9 | 1.3 1.7 | 2.1
        ([req(start=0.0, ttft=0.1, itl=[0.1] * 2), req(start=0.2, ttft=0.1, itl=[0.1] * 2)], 6.0),
        (
            [req(start=5.0, ttft=1.2, itl=[0.1]), req(start=6.0, ttft=1.5, itl=[])],
            2.0,
        ),  # from the first start
    ],
)
def test_max_tokens_per_second(results: list[RequestResult], peak: float) -> None:
    assert max_tokens_per_second(results) == peak


def test_generation_metrics_sums_successful_requests() -> None:
    results = [
        req(start=0.0, ttft=0.2, itl=[0.1] * 4, prompt=10),  # 5 tokens, e2el 0.6
        req(start=0.5, ttft=0.4, itl=[0.2] * 2, prompt=20, truncated=True),  # 3 tokens, e2el 0.8
        req(start=0.0, success=False),
    ]
    m = generation_metrics(results, duration=2.0)
    assert (m.completed, m.failed, m.truncated) == (2, 1, 1)
    assert (m.total_input_tokens, m.total_output_tokens) == (30, 8)
    assert m.request_throughput == pytest.approx(1.0)
    assert m.output_throughput == pytest.approx(4.0)
    assert m.total_token_throughput == pytest.approx(19.0)
    assert m.request_goodput is None  # no SLO given
    assert m.ttft.mean == pytest.approx(300.0)
    assert m.tpot.mean == pytest.approx(150.0)  # 0.1 and 0.2 s
    assert m.itl.mean == pytest.approx((0.1 * 4 + 0.2 * 2) / 6 * 1000)
    assert m.e2el.median == pytest.approx(700.0)
    assert m.max_concurrent_requests == 2  # [0, 0.6) and [0.5, 1.3) overlap


def test_generation_goodput_counts_only_complete_requests_within_slos() -> None:
    results = [
        req(ttft=0.1, itl=[0.05]),
        req(ttft=0.3, itl=[0.05]),
        req(ttft=0.1, itl=[0.05], truncated=True),
    ]
    m = generation_metrics(results, duration=4.0, slos={"ttft": 200})
    assert m.request_goodput == pytest.approx(1 / 4.0)
    assert m.request_throughput == pytest.approx(3 / 4.0)


def test_generation_metrics_of_nothing_is_zero_not_an_error() -> None:
    m = generation_metrics([req(success=False)], duration=1.0, slos={"ttft": 1})
    assert (m.completed, m.failed, m.request_throughput, m.request_goodput) == (0, 1, 0.0, 0.0)
    assert m.ttft.mean == 0.0 and m.max_concurrent_requests == 0


def test_embedding_metrics() -> None:
    results = [
        RequestResult(success=True, start_time=0.0, latency=0.2, prompt_tokens=40, num_inputs=4),
        RequestResult(success=True, start_time=0.1, latency=0.4, prompt_tokens=40, num_inputs=4),
        RequestResult(success=False, num_inputs=4),
    ]
    m = embedding_metrics(results, duration=0.5)
    assert (m.completed, m.failed, m.total_input_sequences, m.total_input_tokens) == (2, 1, 8, 80)
    assert m.request_throughput == pytest.approx(4.0)
    assert m.input_sequence_throughput == pytest.approx(16.0)
    assert m.total_token_throughput == pytest.approx(160.0)
    assert m.e2el.mean == pytest.approx(300.0)
    assert m.max_concurrent_requests == 2
