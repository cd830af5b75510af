"""What the gateway learns about one request while it runs: the ``RequestRecord``.

The middleware (``observability/middleware.py``) opens a record when a request arrives and
closes it when the last byte has been sent: one log line, the request metrics and the root span
come from it. In between, the layers that know more write to it through ``current()``: the
proxy notes the model, the time spent waiting for a worker, the first streamed byte, and the
tail of the answer (where the worker puts ``usage``); error handlers note the error.

Nothing here parses the stream: the answer's ``usage`` is read once, from the last bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nanoserve.errors import (
    BadRequest,
    InsufficientMemory,
    NanoserveError,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    RequestTimeout,
    ServerBusy,
    Unavailable,
    WorkerUnavailable,
)
from nanoserve.wire.headers import REQUEST_ID_HEADER

if TYPE_CHECKING:
    from nanoserve.observability.metrics import GatewayMetrics
    from nanoserve.observability.tracing import Tracing
    from nanoserve.orchestrator.orchestrator import Orchestrator

_current: ContextVar[RequestRecord | None] = ContextVar("nanoserve_request", default=None)

_USAGE_KEY = b'"usage":'
_decoder = json.JSONDecoder()


def current() -> RequestRecord | None:
    """The record of the request being served, or None outside one (background tasks, tests)."""
    return _current.get()


@dataclass(slots=True, eq=False)
class RequestRecord:
    request_id: str
    method: str
    path: str
    metrics: GatewayMetrics
    tracing: Tracing
    started: float = field(default_factory=time.perf_counter)
    route: str = ""
    model: str = ""
    status: int = 0
    queue_seconds: float | None = None
    cold_start: bool = False
    first_byte: float | None = None  # perf_counter when the first streamed chunk was relayed
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    error: str | None = None
    rejection: str | None = None
    stream_error: bool = False
    running: bool = False  # holds a worker (counted in nanoserve_requests_running)
    span: Any = None
    worker_span: Any = None

    # -- written by the proxy ---------------------------------------------------------------
    @contextmanager
    def waiting(self, orchestrator: Orchestrator, name: str) -> Iterator[None]:
        """Around ``orchestrator.acquire``: the queue wait, cold starts, the waiting gauge."""
        config = orchestrator.registry.find(name)
        if config is None:  # acquire raises ModelNotFound: nothing to measure
            yield
            return
        self.model = config.id
        instance = orchestrator.instances.get(self.model)
        cold = instance is not None and instance.state != "ready"
        series = self.metrics.model_series(self.model)
        span = self.tracing.start("queue", parent=self.span, attributes={"nanoserve.model": self.model})
        series.waiting.inc()
        began = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            waited = time.perf_counter() - began
            series.waiting.dec()
            self.queue_seconds = (self.queue_seconds or 0.0) + waited
            self.cold_start = self.cold_start or cold
            (series.queue_wait_cold if cold else series.queue_wait_warm).observe(waited)
            self.tracing.end(
                span, attributes={"nanoserve.cold_start": cold}, error=None if ok else "not served"
            )
            if ok and not self.running:
                self.running = True
                series.running.inc()

    def worker_headers(self) -> dict[str, str]:
        """Headers for the call to the backend: the request id, and the trace context when
        tracing is on."""
        headers = {REQUEST_ID_HEADER: self.request_id}
        if not self.tracing.enabled:
            return headers
        if self.worker_span is None:
            self.worker_span = self.tracing.start("worker", parent=self.span, kind="client")
        return {**headers, **(self.tracing.inject(self.worker_span) or {})}

    def first_chunk(self) -> None:
        self.first_byte = time.perf_counter()

    def answered(self, status: int, tail: bytes) -> None:
        """The worker's answer ended; ``tail`` is its last bytes (usage, or an error body)."""
        if status >= 400:
            self.error = self.error or _error_message(tail)
            if 400 <= status < 500 and status != 429:  # the worker found the request invalid
                self.rejection = self.rejection or "bad_request"
            return
        usage = usage_from_tail(tail)
        if usage is not None:
            self.took_usage(usage)

    def took_usage(self, usage: dict[str, Any]) -> None:
        """The worker's OpenAI ``usage`` object (for relays that parse the stream themselves)."""
        self.prompt_tokens = usage.get("prompt_tokens")
        self.completion_tokens = usage.get("completion_tokens")
        details = usage.get("prompt_tokens_details") or {}
        self.cached_tokens = details.get("cached_tokens") if isinstance(details, dict) else None

    def stream_failed(self, message: str) -> None:
        self.error = message
        self.stream_error = True

    # -- written by the error handlers -----------------------------------------------------
    def failed(self, exc: BaseException, *, accepting: bool = True) -> None:
        self.error = exc.message if isinstance(exc, NanoserveError) else f"{type(exc).__name__}: {exc}"
        self.rejection = rejection_reason(exc, accepting=accepting)

    def timings(self) -> Timings:
        now = time.perf_counter()
        ttft = None if self.first_byte is None else self.first_byte - self.started
        return Timings(duration=now - self.started, queue=self.queue_seconds, ttft=ttft)


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds of one request: total, waiting for a worker, to the first streamed byte."""

    duration: float
    queue: float | None  # None: never waited for a worker (rejected before)
    ttft: float | None  # None: not streamed


def waiting(
    record: RequestRecord | None, orchestrator: Orchestrator, name: str
) -> AbstractContextManager[None]:
    """``record.waiting(...)``, or nothing outside a recorded request."""
    return nullcontext() if record is None else record.waiting(orchestrator, name)


def note_error(exc: BaseException, *, accepting: bool = True) -> None:
    """Record the error a request is answered with (called by the gateway's error handlers)."""
    record = _current.get()
    if record is not None:
        record.failed(exc, accepting=accepting)


def rejection_reason(exc: BaseException, *, accepting: bool = True) -> str | None:
    """Why a request was turned away before a model served it, or None if it was not.

    queue_full (429), concurrency_limit (429, limits.max_concurrent_requests), timeout (408,
    limits.request_timeout), no_memory (507, or 503 "no room right now"), bad_request (the
    client's fault: 400, 404 unknown model, 413), shutting_down (503 while the gateway stops).
    """
    if isinstance(exc, ServerBusy):
        return "concurrency_limit"
    if isinstance(exc, RequestTimeout):
        return "timeout"
    if isinstance(exc, QueueFull):
        return "queue_full"
    if isinstance(exc, InsufficientMemory):
        return "no_memory"
    if isinstance(exc, WorkerUnavailable):
        return None  # a failure, not a rejection
    if isinstance(exc, Unavailable):
        return "no_memory" if accepting else "shutting_down"
    if isinstance(exc, (BadRequest, PayloadTooLarge)):
        return "bad_request"
    if isinstance(exc, NotFound) and exc.param == "model":
        return "bad_request"
    return None


def usage_from_tail(tail: bytes) -> dict[str, Any] | None:
    """The last ``"usage": {...}`` object in ``tail`` (a JSON body, or the end of an SSE stream)."""
    at = tail.rfind(_USAGE_KEY)
    if at < 0:
        return None
    text = tail[at + len(_USAGE_KEY) :].decode("utf-8", errors="replace").lstrip()
    try:
        usage, _ = _decoder.raw_decode(text)
    except ValueError:
        return None
    return usage if isinstance(usage, dict) else None


def _error_message(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", errors="replace") or None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error) if error else None


@contextmanager
def recording(record: RequestRecord) -> Iterator[RequestRecord]:
    """Make ``record`` the current one for the code (and tasks) run inside."""
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)
