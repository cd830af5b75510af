"""Engine metrics of one worker, at the worker's ``GET /metrics`` (the gateway merges them).

Two sources, both labelled with the model:

* per request, recorded once when it ends (never per token): time to first token, time per
  output token, tokens, prefix-cache hits, how it finished. The serving layer hands each
  request's timings to its ``RequestProbe``.
* the engine's own counters, read at scrape time from ``engine.info()["stats"]`` and turned
  into Prometheus families by the shape of each key (``nanoserve.engines.stats``): batch size
  per decode step, embedding batch size, engine internals.

The same probe also writes the request's worker and engine spans when tracing is on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from nanoserve.engines.base import Finished
from nanoserve.observability.tracing import Tracing
from nanoserve.wire.headers import WARM_UP_HEADER

log = logging.getLogger("nanoserve.worker")

TTFT_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
TPOT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
)
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

# Help texts of the engine histograms the docs promise; other engine keys get a generic one.
ENGINE_HISTOGRAM_HELP = {
    "batch_size": "Sequences decoded together in one engine step",
    "embedding_batch_size": "Inputs embedded together in one forward pass",
    "decode_step_tokens": "Tokens (prompt and generated) in one engine step",
}

StatsSource = Callable[[], Mapping[str, Any]]


class EngineStatsCollector(Collector):
    """``engine.info()["stats"]`` as Prometheus families, read at scrape time."""

    def __init__(self, model: str, stats: StatsSource):
        self.model = model
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        try:
            stats = dict(self.stats())
        except Exception:  # a scrape must not fail because an engine's info() did
            log.exception("reading engine stats failed")
            return
        labels = [self.model]
        for key, value in stats.items():
            if key.endswith("_bucket") and isinstance(value, Mapping):
                name = key.removesuffix("_bucket")
                total = stats.get(f"{name}_sum", stats.get(f"{name}_total"))
                family = HistogramMetricFamily(
                    f"nanoserve_{name}",
                    ENGINE_HISTOGRAM_HELP.get(name, f"Engine histogram {name}"),
                    labels=["model"],
                )
                family.add_metric(labels, _buckets(value), sum_value=total)
                yield family
            elif not _is_number(value) or (key.endswith("_sum") and f"{key[:-4]}_bucket" in stats):
                continue  # not a number, or the sum of a histogram above
            elif key.endswith("_total"):
                counter = CounterMetricFamily(
                    f"nanoserve_engine_{key}", f"Engine counter {key}", labels=["model"]
                )
                counter.add_metric(labels, value)
                yield counter
            else:
                gauge = GaugeMetricFamily(f"nanoserve_engine_{key}", f"Engine gauge {key}", labels=["model"])
                gauge.add_metric(labels, value)
                yield gauge


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _buckets(cumulative: Mapping[str, float]) -> list[tuple[str, float]]:
    """Sorted ``(le, count)`` pairs ending with ``+Inf`` (added from the largest count if missing)."""
    pairs = sorted((float(le), count) for le, count in cumulative.items())
    if not pairs or pairs[-1][0] != float("inf"):
        pairs.append((float("inf"), max((c for _, c in pairs), default=0)))
    return [(floatToGoString(le), count) for le, count in pairs]


class WorkerMetrics:
    """The worker's metric families, in a registry of its own (no global state)."""

    def __init__(self, model: str, stats: StatsSource | None = None):
        self.model = model
        self.registry = CollectorRegistry(auto_describe=True)
        r, m = self.registry, ["model"]
        self.ttft = Histogram(
            "nanoserve_time_to_first_token_seconds",
            "Arrival at the worker to the first generated token (engine queue and prefill included)",
            m,
            registry=r,
            buckets=TTFT_BUCKETS,
        ).labels(model)
        self.tpot = Histogram(
            "nanoserve_time_per_output_token_seconds",
            "Mean time between generated tokens of a request, after the first",
            m,
            registry=r,
            buckets=TPOT_BUCKETS,
        ).labels(model)
        self.duration = Histogram(
            "nanoserve_worker_request_duration_seconds",
            "Arrival at the worker to the end of its answer",
            ["model", "kind"],
            registry=r,
            buckets=DURATION_BUCKETS,
        )
        self.prompt_tokens = Counter(
            "nanoserve_prompt_tokens", "Prompt (input) tokens processed", m, registry=r
        ).labels(model)
        self.generated_tokens = Counter(
            "nanoserve_generated_tokens", "Tokens generated", m, registry=r
        ).labels(model)
        self.cache_hit_tokens = Counter(
            "nanoserve_prefix_cache_hit_tokens", "Prompt tokens reused from the prefix cache", m, registry=r
        ).labels(model)
        self.finished = Counter(
            "nanoserve_generation_requests",
            "Generation requests by how they ended "
            "(stop, length, tool_calls; aborted: the client left or the engine failed)",
            ["model", "finish_reason"],
            registry=r,
        )
        self.embedding_inputs = Counter("nanoserve_embedding_inputs", "Texts embedded", m, registry=r).labels(
            model
        )
        for reason in ("stop", "length", "aborted"):
            self.finished.labels(model, reason)
        if stats is not None:
            r.register(EngineStatsCollector(model, stats))

    def generation_done(self, timing: GenerationTiming) -> None:
        self.duration.labels(self.model, "generation").observe(timing.ended - timing.arrived)
        if timing.first_token:
            self.ttft.observe(timing.first_token - timing.arrived)
        done = timing.done
        if done is None:
            self.finished.labels(self.model, "aborted").inc()
            return
        self.finished.labels(self.model, done.finish_reason).inc()
        self.prompt_tokens.inc(done.prompt_tokens)
        self.generated_tokens.inc(done.completion_tokens)
        self.cache_hit_tokens.inc(done.cached_tokens)
        if done.completion_tokens > 1 and timing.first_token:
            self.tpot.observe((timing.ended - timing.first_token) / (done.completion_tokens - 1))

    def embedding_done(
        self, arrived: float, ended: float, inputs: int, tokens: int, kind: str = "embedding"
    ) -> None:
        """An embedding request (or, ``kind`` "rerank", a rerank request) answered."""
        self.duration.labels(self.model, kind).observe(ended - arrived)
        if kind == "embedding":
            self.embedding_inputs.inc(inputs)
        self.prompt_tokens.inc(tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(slots=True)
class GenerationTiming:
    """``time.perf_counter()`` readings of one generation request; 0.0 = did not happen."""

    arrived: float
    engine_started: float
    first_token: float
    ended: float
    done: Finished | None  # None: the request ended before the engine finished it


class WorkerTelemetry:
    """Metrics and tracing of one worker; hands out a probe per request."""

    def __init__(self, metrics: WorkerMetrics, tracing: Tracing | None = None):
        self.metrics = metrics
        self.tracing = tracing or Tracing()

    def probe(self, route: str, headers: Mapping[str, str]) -> RequestProbe:
        parent = self.tracing.extract(headers) if self.tracing.enabled else None
        return RequestProbe(self, route, parent, counted=WARM_UP_HEADER not in headers)


@dataclass(slots=True, eq=False)
class RequestProbe:
    """Telemetry of one request in the worker: created on arrival, told once when it ends."""

    telemetry: WorkerTelemetry
    route: str
    parent: Any = None  # the gateway's span, from the request's traceparent header
    counted: bool = True  # False for the gateway's warm-up requests: no metrics, no spans
    arrived: float = field(default_factory=time.perf_counter)
    arrived_ns: int = field(default_factory=time.time_ns)

    def generation_done(self, engine_started: float, first_token: float, done: Finished | None) -> None:
        if not self.counted:
            return
        timing = GenerationTiming(self.arrived, engine_started, first_token, time.perf_counter(), done)
        self.telemetry.metrics.generation_done(timing)
        if self.telemetry.tracing.enabled:
            self._generation_spans(timing)

    def embedding_done(self, inputs: int, tokens: int, *, kind: str = "embedding") -> None:
        if not self.counted:
            return
        ended = time.perf_counter()
        self.telemetry.metrics.embedding_done(self.arrived, ended, inputs, tokens, kind)
        tracing = self.telemetry.tracing
        if tracing.enabled:
            span = self._server_span()
            tracing.end(
                tracing.start(
                    "engine.embed" if kind == "embedding" else f"engine.{kind}",
                    parent=span,
                    attributes={"nanoserve.inputs": inputs},
                    start_ns=self.arrived_ns,
                ),
                end_ns=self._ns(ended),
            )
            tracing.end(span, attributes={"gen_ai.usage.input_tokens": tokens}, end_ns=self._ns(ended))

    # -- spans (only when tracing is on) --------------------------------------------------
    def _ns(self, t: float) -> int:
        return self.arrived_ns + int((t - self.arrived) * 1e9)

    def _server_span(self) -> Any:
        model = self.telemetry.metrics.model
        return self.telemetry.tracing.start(
            f"worker {self.route}",
            parent=self.parent,
            kind="server",
            attributes={"nanoserve.model": model, "http.route": self.route},
            start_ns=self.arrived_ns,
        )

    def _generation_spans(self, t: GenerationTiming) -> None:
        tracing, done = self.telemetry.tracing, t.done
        span = self._server_span()
        if t.first_token:
            prefill = tracing.start(
                "engine.prefill", parent=span, start_ns=self._ns(t.engine_started or t.arrived)
            )
            tracing.end(
                prefill,
                attributes={
                    "gen_ai.usage.input_tokens": done.prompt_tokens if done else None,
                    "nanoserve.cached_tokens": done.cached_tokens if done else None,
                },
                end_ns=self._ns(t.first_token),
            )
            decode = tracing.start("engine.decode", parent=span, start_ns=self._ns(t.first_token))
            tracing.end(
                decode,
                attributes={"gen_ai.usage.output_tokens": done.completion_tokens if done else None},
                end_ns=self._ns(t.ended),
            )
        tracing.end(
            span,
            attributes={"gen_ai.response.finish_reasons": (done.finish_reason,) if done else None},
            error=None if done else "aborted",
            end_ns=self._ns(t.ended),
        )
