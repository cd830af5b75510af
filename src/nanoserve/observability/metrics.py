"""The gateway's Prometheus metrics, in a registry of its own (one per app, no global registry).

Three kinds of sources:

* requests, recorded once when a response ends (``request_done``, fed by the middleware);
* model lifecycle events from the orchestrator's listener hook (``on_event``): loads, load
  time, unloads by reason, crashes and restarts. Other parts that reject or evict call the
  small counters directly (``rejections``, ``unloads``) or emit an event with a ``reason``;
* the orchestrator's state and memory, read at scrape time (``OrchestratorCollector``).

Engine figures (TTFT, TPOT, tokens, batch sizes) come from the workers' own ``/metrics``;
``exposition.py`` merges them into the gateway's scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from nanoserve.observability.requests import RequestRecord, Timings
    from nanoserve.orchestrator.instance import ModelInstance
    from nanoserve.orchestrator.orchestrator import Orchestrator

log = logging.getLogger("nanoserve.observability")

MiB = 1024 * 1024
REQUEST_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
FIRST_TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUEUE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

UNLOAD_REASONS = ("idle", "memory", "manual", "crash")
# orchestrator reasons → the metric's label (logs keep the orchestrator's own words)
_UNLOAD_LABELS = {**{r: r for r in UNLOAD_REASONS}, "shutdown": "shutdown", "keep_alive=0": "manual"}


def unload_label(reason: object) -> str:
    """The ``reason`` label of an unload: idle, memory, manual, crash, shutdown, or other."""
    return _UNLOAD_LABELS.get(str(reason or "manual"), "other")


REJECTION_REASONS = ("queue_full", "concurrency_limit", "timeout", "no_memory", "bad_request")
STATES = ("stopped", "starting", "ready", "draining", "stopping", "failed")


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    device: str  # "ram", "gpu0", ...
    used_bytes: int
    budget_bytes: int | None


MemorySource = Callable[[], Iterable[DeviceMemory]]


@dataclass(frozen=True, slots=True)
class ModelSeries:
    """One model's per-request series, looked up once (``labels()`` costs microseconds)."""

    waiting: Any
    running: Any
    queue_wait_cold: Any
    queue_wait_warm: Any


class GatewayMetrics:
    def __init__(self, models: Iterable[str] = ()):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "nanoserve_requests",
            "Requests answered, by route, model and HTTP status",
            ["route", "model", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "nanoserve_request_duration_seconds",
            "Arrival at the gateway to the last byte sent",
            ["route", "model"],
            registry=r,
            buckets=REQUEST_BUCKETS,
        )
        self.first_byte = Histogram(
            "nanoserve_gateway_time_to_first_token_seconds",
            "Streamed requests: arrival at the gateway to the first token relayed "
            "(queue wait and cold start included)",
            ["route", "model"],
            registry=r,
            buckets=FIRST_TOKEN_BUCKETS,
        )
        self.queue_wait = Histogram(
            "nanoserve_queue_wait_seconds",
            "Time a request waited for a ready worker; cold_start=true when it waited for a model load",
            ["model", "cold_start"],
            registry=r,
            buckets=QUEUE_BUCKETS,
        )
        self.running = Gauge("nanoserve_requests_running", "Requests holding a worker", ["model"], registry=r)
        self.waiting = Gauge(
            "nanoserve_requests_waiting",
            "Requests waiting for a ready worker (queued or loading)",
            ["model"],
            registry=r,
        )
        self.rejections = Counter(
            "nanoserve_rejections",
            "Requests turned away, by reason (queue_full, no_memory, bad_request, ...)",
            ["model", "reason"],
            registry=r,
        )
        self.stream_errors = Counter(
            "nanoserve_stream_errors",
            "Streams that ended with an error event (the worker failed mid-answer)",
            ["model"],
            registry=r,
        )
        self.loads = Counter(
            "nanoserve_model_loads", "Models loaded (worker became ready)", ["model"], registry=r
        )
        self.load_duration = Histogram(
            "nanoserve_model_load_duration_seconds",
            "Worker start to ready",
            ["model"],
            registry=r,
            buckets=LOAD_BUCKETS,
        )
        self.load_failures = Counter(
            "nanoserve_model_load_failures", "Loads that failed", ["model"], registry=r
        )
        self.unloads = Counter(
            "nanoserve_model_unloads",
            "Models unloaded, by reason (idle, memory, manual, crash, shutdown)",
            ["model", "reason"],
            registry=r,
        )
        self.restarts = Counter(
            "nanoserve_worker_restarts", "Workers started again after a crash", ["model"], registry=r
        )
        self.heartbeat_misses = Counter(
            "nanoserve_heartbeat_misses",
            "Health checks a worker did not answer in time",
            ["model"],
            registry=r,
        )
        self.worker_scrape_errors = Counter(
            "nanoserve_worker_scrape_errors",
            "Workers whose /metrics could not be read at scrape time",
            ["model"],
            registry=r,
        )
        self._crashed: set[str] = set()
        # label children per (route, model, status): labels() costs microseconds, a dict lookup does not
        self._per_request: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._per_model: dict[str, ModelSeries] = {}
        for model in models:  # every series exists from the start, so rate() sees the first event
            for counter in (self.loads, self.load_failures, self.restarts, self.running, self.waiting):
                counter.labels(model)
            for reason in UNLOAD_REASONS:
                self.unloads.labels(model, reason)
            for reason in REJECTION_REASONS:
                self.rejections.labels(model, reason)

    def watch(self, orchestrator: Orchestrator, memory: MemorySource | None = None) -> None:
        """Follow ``orchestrator``: its lifecycle events, and its state and memory at scrape time."""
        orchestrator.add_listener(self.on_event)
        self.registry.register(OrchestratorCollector(orchestrator, memory or measured_memory(orchestrator)))

    # -- recording ----------------------------------------------------------------------
    def model_series(self, model: str) -> ModelSeries:
        series = self._per_model.get(model)
        if series is None:
            series = self._per_model[model] = ModelSeries(
                waiting=self.waiting.labels(model),
                running=self.running.labels(model),
                queue_wait_cold=self.queue_wait.labels(model, "true"),
                queue_wait_warm=self.queue_wait.labels(model, "false"),
            )
        return series

    def request_done(self, record: RequestRecord, timings: Timings) -> None:
        route, model = record.route, record.model
        key = (route, model, record.status)
        children = self._per_request.get(key)
        if children is None:
            children = self._per_request[key] = (
                self.requests.labels(route, model, str(record.status)),
                self.request_duration.labels(route, model),
            )
        children[0].inc()
        children[1].observe(timings.duration)
        if timings.ttft is not None:
            self.first_byte.labels(route, model).observe(timings.ttft)
        if record.rejection:
            self.rejections.labels(model, record.rejection).inc()
        if record.stream_error:
            self.stream_errors.labels(model).inc()
        if record.running:
            self.model_series(model).running.dec()

    def on_event(self, event: str, instance: ModelInstance, details: dict[str, Any]) -> None:
        """The orchestrator's listener: one call per state change of a model instance."""
        model = instance.id
        if event == "ready":
            self.loads.labels(model).inc()
            if (seconds := details.get("load_seconds")) is not None:
                self.load_duration.labels(model).observe(seconds)
            if model in self._crashed:
                self._crashed.discard(model)
                self.restarts.labels(model).inc()
        elif event == "failed":
            if details.get("reason") == "crash":
                self.unloads.labels(model, "crash").inc()
                self._crashed.add(model)
            else:
                self.load_failures.labels(model).inc()
        elif event == "heartbeat_missed":
            self.heartbeat_misses.labels(model).inc()
        elif event == "stopped":
            if details.get("previous") == "stopping":
                self.unloads.labels(model, unload_label(details.get("reason"))).inc()
            self._crashed.discard(model)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class OrchestratorCollector(Collector):
    """Model states and memory, read from the orchestrator at scrape time."""

    def __init__(self, orchestrator: Orchestrator, memory: MemorySource):
        self.orchestrator = orchestrator
        self.memory = memory

    def collect(self) -> Iterator[Metric]:
        views = self.orchestrator.views()
        state = GaugeMetricFamily(
            "nanoserve_model_state", "1 for the state each model is in", labels=["model", "state"]
        )
        size = GaugeMetricFamily(
            "nanoserve_model_memory_bytes",
            "Memory of each loaded model's worker (measured)",
            labels=["model"],
        )
        for view in views:
            for name in STATES:
                state.add_metric([view.id, name], 1.0 if view.state == name else 0.0)
            if view.pid is not None:
                measured = view.measured_bytes if view.measured_bytes is not None else process_rss(view.pid)
                if measured is not None:
                    size.add_metric([view.id], measured)
        yield state
        yield size
        used = GaugeMetricFamily(
            "nanoserve_memory_used_bytes", "Memory used by models, per device", labels=["device"]
        )
        budget = GaugeMetricFamily(
            "nanoserve_memory_budget_bytes", "Memory models may use, per device", labels=["device"]
        )
        try:
            devices = list(self.memory())
        except Exception:  # a scrape must not fail because a memory reading did
            log.exception("reading memory for /metrics failed")
            devices = []
        for device in devices:
            used.add_metric([device.device], device.used_bytes)
            if device.budget_bytes is not None:
                budget.add_metric([device.device], device.budget_bytes)
        yield used
        yield budget


def process_rss(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def measured_memory(orchestrator: Orchestrator) -> MemorySource:
    """RAM used by the workers (their RSS) against the configured budget.

    The memory planner can replace this with its own view (``GatewayMetrics.watch(..., memory=)``),
    which also knows GPUs.
    """

    def read() -> list[DeviceMemory]:
        used = 0
        for view in orchestrator.views():
            if view.pid is not None:
                used += (
                    view.measured_bytes if view.measured_bytes is not None else process_rss(view.pid)
                ) or 0
        return [DeviceMemory("ram", used, ram_budget(orchestrator.settings))]

    return read


def ram_budget(settings: Any) -> int:
    """``memory.budget_mib`` when configured, else total RAM minus ``memory.margin_mib``."""
    memory = getattr(settings, "memory", None)
    if (budget_mib := getattr(memory, "budget_mib", None)) is not None:
        return int(budget_mib) * MiB
    margin = int(getattr(memory, "margin_mib", 0) or 0) * MiB
    return max(0, int(psutil.virtual_memory().total) - margin)
