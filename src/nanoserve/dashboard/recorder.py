"""What the gateway remembers for the dashboard, in bounded rings (no disk, no database):
recent requests (no prompt or answer text), lifecycle events with their reasons (the last unload
reason per model), the gateway's own log tail, and the per-second ``Series``.

It only listens: the request middleware hands it each finished record (``Telemetry``'s request
listeners), the orchestrator each lifecycle event, the logging system each log line. A sampler
task reads the running/waiting gauges once a second and wakes the live feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nanoserve.dashboard.series import Series
from nanoserve.observability.logging import TextFormatter

if TYPE_CHECKING:
    from nanoserve.observability.requests import RequestRecord, Timings
    from nanoserve.orchestrator.instance import ModelInstance
    from nanoserve.orchestrator.orchestrator import Orchestrator

log = logging.getLogger("nanoserve.dashboard")

MAX_REQUESTS = 1000
MAX_EVENTS = 500
MAX_LOG_LINES = 1000
# the dashboard's own traffic (pages, JSON, live feed) and probes are not "recent requests"
UNRECORDED = (
    "/ui",
    "/dashboard",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/favicon.ico",
    "/health",
    "/ready",
    "/metrics",
)
UNLOADED = "unloaded"


@dataclass(frozen=True, slots=True)
class RequestEntry:
    id: str
    at: float  # unix time the request ended
    method: str
    path: str
    route: str
    model: str
    status: int
    prompt_tokens: int | None
    completion_tokens: int | None
    queue_ms: float | None
    ttft_ms: float | None
    total_ms: float
    cold_start: bool
    error: str | None
    rejection: str | None


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    at: float
    model: str
    replica: int
    event: str
    reason: str | None
    details: dict[str, Any]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` with values JSON can carry (enums and the like as strings)."""
    return {k: v if isinstance(v, (int, float, bool, type(None))) else str(v) for k, v in details.items()}


class LogTail(logging.Handler):
    """The last ``MAX_LOG_LINES`` log records of the gateway, formatted as on stderr when read:
    the handler runs on the event loop for every record, the dashboard reads now and then."""

    def __init__(self, capacity: int = MAX_LOG_LINES):
        super().__init__(logging.INFO)
        self.records: deque[logging.LogRecord | str] = deque(maxlen=capacity)
        self.setFormatter(TextFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:  # a traceback would keep its frames alive: formatted at once
            self.records.append(self.format(record) if record.exc_info else record)
        except Exception:  # noqa: BLE001 - a log handler never raises
            self.handleError(record)

    def tail(self, count: int) -> str:
        entries = list(self.records)[-count:]
        return "\n".join(e if isinstance(e, str) else self.format(e) for e in entries)


class Recorder:
    def __init__(self, orchestrator: Orchestrator):
        self.orchestrator = orchestrator
        self.requests: deque[RequestEntry] = deque(maxlen=MAX_REQUESTS)
        self.events: deque[LifecycleEvent] = deque(maxlen=MAX_EVENTS)
        self.last_unload: dict[str, dict[str, Any]] = {}
        self.series = Series()
        self.logs = LogTail()
        self.tick = 0  # seconds sampled so far; the live feeds wait for it to move
        self.latest = b""  # the live feed's last message, serialized once for every subscriber
        self._changed = asyncio.Condition()
        self._sampler: asyncio.Task[None] | None = None
        self.stopping = False  # the server is shutting down: live feeds end (they would hold it up)
        self._chained: list[tuple[signal.Signals, Any, Any]] = []
        self.started = time.time()
        orchestrator.add_listener(self.on_event)

    # -- listeners ------------------------------------------------------------------------
    def on_request(self, record: RequestRecord, timings: Timings) -> None:
        if record.path.startswith(UNRECORDED):
            return
        now = time.time()
        self.requests.append(
            RequestEntry(
                id=record.request_id,
                at=now,
                method=record.method,
                path=record.path,
                route=record.route,
                model=record.model,
                status=record.status,
                prompt_tokens=record.prompt_tokens,
                completion_tokens=record.completion_tokens,
                queue_ms=_ms(timings.queue),
                ttft_ms=_ms(timings.ttft),
                total_ms=round(timings.duration * 1000, 1),
                cold_start=record.cold_start,
                error=record.error,
                rejection=record.rejection,
            )
        )
        self.series.request(
            int(now),
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            ttft=timings.ttft,
            queue=timings.queue,
            error=record.status >= 500 or record.stream_error,
            rejection=record.rejection,
        )

    def on_event(self, event: str, instance: ModelInstance, details: dict[str, Any]) -> None:
        reason = details.get("reason")
        entry = LifecycleEvent(
            time.time(),
            instance.id,
            instance.replica,
            event,
            None if reason is None else str(reason),
            _plain(details),
        )
        self.events.append(entry)
        if event == UNLOADED:
            self.last_unload[instance.id] = {
                "reason": entry.reason,
                "at": entry.at,
                "forced": details.get("forced"),
            }

    # -- the sampler ------------------------------------------------------------------------
    def start(self) -> None:
        logging.getLogger().addHandler(self.logs)
        loop = asyncio.get_running_loop()
        self._sampler = loop.create_task(self._sample(), name="dashboard-sampler")
        self._chain_stop_signals(loop)

    def _chain_stop_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """End the live feeds as soon as the server is told to stop. The server waits for open
        responses before it shuts the app down, and a live feed never ends by itself: without
        this, a dashboard left open would hold every shutdown for the whole grace period."""
        if threading.current_thread() is not threading.main_thread():
            return  # signals are the main thread's (a server run in a thread: tests)
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def on_signal(signum: int, frame: Any, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.stop_feeds)
                previous(signum, frame)

            signal.signal(sig, on_signal)
            self._chained.append((sig, on_signal, previous))

    def stop_feeds(self) -> None:
        self.stopping = True
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def aclose(self) -> None:
        logging.getLogger().removeHandler(self.logs)
        for sig, ours, previous in self._chained:
            if signal.getsignal(sig) is ours:
                signal.signal(sig, previous)
        self._chained.clear()
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler

    async def _sample(self) -> None:
        while True:
            # wake just after each second turns, so that the second just ended is complete
            await asyncio.sleep(1.0 - (time.time() % 1.0) + 0.01)
            try:
                self.sample_once(int(time.time()) - 1)
            except Exception:
                log.exception("dashboard sample failed")
            async with self._changed:
                self.tick += 1
                self._changed.notify_all()

    def sample_once(self, t: int) -> None:
        groups = self.orchestrator.groups.values()
        running = sum(min(g.in_flight, g.slots()) for g in groups)  # holding a sequence slot
        waiting = sum(g.queued() for g in groups)
        self.series.gauges(t, running, waiting)
        models = [
            {"id": v.id, "state": v.state, "in_flight": v.in_flight, "queued": v.queued}
            for v in self.orchestrator.views()
        ]
        message = {"t": t, "point": self.series.last(t), "models": models}
        self.latest = b"data: " + json.dumps(message, separators=(",", ":")).encode() + b"\n\n"

    async def next_message(self, seen: int, timeout: float = 15.0) -> tuple[int, bytes | None]:
        """The message after tick ``seen`` (None on timeout: send a keep-alive comment). Check
        ``stopping`` after it: then the feed ends."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.tick != seen or self.stopping), timeout
                )
            except TimeoutError:
                return seen, None
            return self.tick, self.latest

    # -- reads ----------------------------------------------------------------------------
    def recent_requests(
        self, *, model: str | None, status: str | None, text: str | None, limit: int
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for entry in reversed(self.requests):
            if model and entry.model != model:
                continue
            if status == "ok" and entry.status >= 400:
                continue
            if status == "error" and entry.status < 400 and not entry.error:
                continue
            if text and text not in entry.id and text not in entry.path:
                continue
            out.append(asdict(entry))
            if len(out) >= limit:
                break
        return out

    def request(self, request_id: str) -> dict[str, Any] | None:
        for entry in reversed(self.requests):
            if entry.id == request_id:
                return asdict(entry)
        return None

    def recent_events(self, limit: int) -> list[dict[str, Any]]:
        return [asdict(e) for e in list(self.events)[-limit:]][::-1]
