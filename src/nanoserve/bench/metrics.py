"""What one request measured, and what a run of them sums up to: pure functions, no I/O.

Definitions follow vLLM's ``vllm bench serve`` so results compare key for key:

* TTFT: request sent -> first chunk carrying a token.
* ITL: every gap between consecutive token chunks.
* E2EL: request sent -> last token chunk (the trailing usage chunk and ``[DONE]`` do not count).
* TPOT: ``(E2EL - TTFT) / (output_tokens - 1)``, only for requests with more than one token.
* Goodput: requests per second that met every configured SLO (``ttft``, ``tpot``, ``e2el`` in
  ms; a one-token request counts TPOT as 0). A truncated stream is never good.
* Statistics are numpy's mean, median, population std and linearly interpolated percentiles,
  in milliseconds; an empty list reports zeros (as vLLM does).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

SLO_NAMES = ("ttft", "tpot", "e2el")
DEFAULT_PERCENTILES: tuple[float, ...] = (99.0,)


@dataclass(slots=True)
class RequestResult:
    """One request as the client saw it. Times are seconds (``time.perf_counter``)."""

    success: bool = False
    error: str = ""
    status: int | None = None  # HTTP status, None when no response arrived
    start_time: float = 0.0  # when the request was sent (after the client's concurrency limit)
    ttft: float = 0.0
    itl: list[float] = field(default_factory=list)
    latency: float = 0.0  # E2EL
    output_tokens: int = 0  # from usage when reported, else the number of token chunks
    prompt_tokens: int = 0  # from usage when reported, else the client's estimate
    usage_reported: bool = False
    truncated: bool = False  # ended early: no [DONE]/finish_reason, or short under ignore_eos
    finish_reason: str | None = None
    num_inputs: int = 1  # embeddings: texts in the request


def tpot(result: RequestResult) -> float | None:
    """Time per output token after the first, or None for a request of at most one token."""
    if result.output_tokens <= 1:
        return None
    return (result.latency - result.ttft) / (result.output_tokens - 1)


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary of one latency metric, in milliseconds."""

    mean: float
    median: float
    std: float
    percentiles: tuple[tuple[float, float], ...]  # (p, value)

    @classmethod
    def of(cls, seconds: Sequence[float], percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Stats:
        values = np.asarray(seconds if len(seconds) else [0.0], dtype=float) * 1000.0
        return cls(
            mean=float(np.mean(values)),
            median=float(np.median(values)),
            std=float(np.std(values)),
            percentiles=tuple((float(p), float(np.percentile(values, p))) for p in percentiles),
        )

    def flat(self, name: str) -> dict[str, float]:
        """vLLM's keys: ``mean_ttft_ms``, ``median_ttft_ms``, ``std_ttft_ms``, ``p99_ttft_ms``."""
        out = {f"mean_{name}_ms": self.mean, f"median_{name}_ms": self.median, f"std_{name}_ms": self.std}
        for p, value in self.percentiles:
            out[f"p{percentile_word(p)}_{name}_ms"] = value
        return out

    def percentile(self, p: float) -> float:
        for q, value in self.percentiles:
            if q == p:
                return value
        raise KeyError(p)


def percentile_word(p: float) -> str:
    """99.0 -> "99", 99.9 -> "99.9" (vLLM's spelling in key names)."""
    return str(int(p)) if float(p).is_integer() else str(p)


def parse_slos(pairs: Iterable[str]) -> dict[str, float]:
    """``["ttft:500", "tpot:50"]`` -> ``{"ttft": 500.0, "tpot": 50.0}`` (milliseconds)."""
    slos: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        name = name.strip().lower()
        if not sep or name not in SLO_NAMES:
            raise ValueError(
                f"invalid SLO {pair!r}: expected NAME:MS with NAME one of {', '.join(SLO_NAMES)}"
            )
        try:
            ms = float(value)
        except ValueError:
            raise ValueError(f"invalid SLO {pair!r}: {value!r} is not a number of milliseconds") from None
        if ms < 0 or math.isnan(ms):
            raise ValueError(f"invalid SLO {pair!r}: must be >= 0 ms")
        slos[name] = ms
    return slos


def meets_slos(result: RequestResult, slos: Mapping[str, float]) -> bool:
    """Whether a successful, complete request met every SLO (ms); vLLM's goodput rule."""
    if not result.success or result.truncated:
        return False
    measured = {"ttft": result.ttft, "tpot": tpot(result) or 0.0, "e2el": result.latency}
    return all(measured[name] <= limit / 1000.0 for name, limit in slos.items())


def peak_concurrency(intervals: Iterable[tuple[float, float]]) -> int:
    """Most half-open ``[start, end)`` intervals open at once (an end before a start on ties)."""
    events = sorted((t, delta) for start, end in intervals for t, delta in ((start, 1), (end, -1)))
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def token_times(result: RequestResult) -> list[float]:
    """Arrival time of each token chunk, rebuilt from start, TTFT and the ITLs."""
    times = [result.start_time + result.ttft]
    for gap in result.itl:
        times.append(times[-1] + gap)
    return times


def max_tokens_per_second(results: Sequence[RequestResult]) -> float:
    """Most token chunks received in any one-second bucket since the first request was sent."""
    if not results:
        return 0.0
    origin = min(r.start_time for r in results)
    buckets = np.concatenate([np.floor(np.asarray(token_times(r)) - origin) for r in results])
    return float(np.bincount(buckets.astype(np.int64)).max())


@dataclass(frozen=True, slots=True)
class GenerationMetrics:
    """A generation run; field names are vLLM's result keys."""

    duration: float
    completed: int
    failed: int
    truncated: int
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    request_goodput: float | None  # None when no SLO was given
    output_throughput: float
    total_token_throughput: float
    max_output_tokens_per_s: float
    max_concurrent_requests: int
    ttft: Stats
    tpot: Stats
    itl: Stats
    e2el: Stats


def generation_metrics(
    results: Sequence[RequestResult],
    duration: float,
    *,
    slos: Mapping[str, float] | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> GenerationMetrics:
    ok = [r for r in results if r.success]
    tpots = [t for r in ok if (t := tpot(r)) is not None]
    total_in = sum(r.prompt_tokens for r in ok)
    total_out = sum(r.output_tokens for r in ok)
    good = sum(meets_slos(r, slos) for r in ok) if slos else None
    return GenerationMetrics(
        duration=duration,
        completed=len(ok),
        failed=len(results) - len(ok),
        truncated=sum(r.truncated for r in ok),
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        request_throughput=_rate(len(ok), duration),
        request_goodput=None if good is None else _rate(good, duration),
        output_throughput=_rate(total_out, duration),
        total_token_throughput=_rate(total_in + total_out, duration),
        max_output_tokens_per_s=max_tokens_per_second(ok),
        max_concurrent_requests=peak_concurrency((r.start_time, r.start_time + r.latency) for r in ok),
        ttft=Stats.of([r.ttft for r in ok], percentiles),
        tpot=Stats.of(tpots, percentiles),
        itl=Stats.of([gap for r in ok for gap in r.itl], percentiles),
        e2el=Stats.of([r.latency for r in ok], percentiles),
    )


@dataclass(frozen=True, slots=True)
class EmbeddingMetrics:
    """An embeddings run; field names are vLLM's result keys."""

    duration: float
    completed: int
    failed: int
    total_input_tokens: int
    total_input_sequences: int
    request_throughput: float
    input_sequence_throughput: float  # inputs per second
    total_token_throughput: float
    max_concurrent_requests: int
    e2el: Stats


def embedding_metrics(
    results: Sequence[RequestResult],
    duration: float,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> EmbeddingMetrics:
    ok = [r for r in results if r.success]
    total_in = sum(r.prompt_tokens for r in ok)
    inputs = sum(r.num_inputs for r in ok)
    return EmbeddingMetrics(
        duration=duration,
        completed=len(ok),
        failed=len(results) - len(ok),
        total_input_tokens=total_in,
        total_input_sequences=inputs,
        request_throughput=_rate(len(ok), duration),
        input_sequence_throughput=_rate(inputs, duration),
        total_token_throughput=_rate(total_in, duration),
        max_concurrent_requests=peak_concurrency((r.start_time, r.start_time + r.latency) for r in ok),
        e2el=Stats.of([r.latency for r in ok], percentiles),
    )


def _rate(count: float, duration: float) -> float:
    return count / duration if duration > 0 else 0.0
