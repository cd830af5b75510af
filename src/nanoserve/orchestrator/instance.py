"""One model instance and the single task that owns its state.

States::

    stopped ──start──▶ starting ──healthy──▶ ready ──stop──▶ draining ──idle──▶ stopping ──▶ stopped
       ▲                  │                    │                                               │
       └──────────────────┴──── failed ◀───────┘ (load error, or the worker died)              │
       └─────────────────────────────────────────────────────────────────────────────────────┘

Only the owner task (``_run``) changes ``state``. Everyone else sends it a command and awaits
the command's future: ``acquire()`` for a ready worker with the request counted in flight (many
concurrent callers share one start), ``stop()`` to unload. Nobody reads the state and then acts
on it across an ``await``.

Before a start the owner asks the host for memory (``Host.reserve``): that may evict other models
or wait for them; the instance becomes ``starting`` only once its memory is reserved. The owner
also unloads the model when its keep-alive expires (never while requests are in flight or
waiting), and after every stop it has the host confirm that the worker's memory is released.

Restart back-off: a failed model (load error, or a worker that died) is started again by the
next request, but one whose worker keeps failing is not reloaded on every request. The first
``FREE_RESTARTS`` failures in a row restart at once; after that a start waits 2, 4, 8 ... up to 60 s
after the last failure, and requests in that window get a 503 with ``Retry-After`` that names the
last error. A worker that ran ``STABLE_SECONDS`` before it died starts the count over.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from nanoserve.config import ModelConfig
from nanoserve.errors import EngineError, NanoserveError, Unavailable
from nanoserve.orchestrator.handles import WorkerHandle

log = logging.getLogger("nanoserve.orchestrator")

FREE_RESTARTS = 2  # failures in a row that are restarted at once
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 60.0
STABLE_SECONDS = 60.0  # a worker that ran this long before dying ends a run of failures


class State(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPING = "stopping"
    FAILED = "failed"


HOLDS_MEMORY = frozenset({State.STARTING, State.READY, State.DRAINING, State.STOPPING})


class Reason(enum.StrEnum):
    """Why a model was unloaded (the ``reason`` of ``unloaded`` events)."""

    IDLE = "idle"  # keep-alive expired
    MEMORY = "memory"  # evicted to make room for another model
    MANUAL = "manual"  # POST /models/unload
    CRASH = "crash"  # the worker died
    SHUTDOWN = "shutdown"
    SCALE_DOWN = "scale_down"  # a replica no longer wanted (idle, or scaled by hand)
    RELOAD = "reload"  # its model was removed or changed by a config reload


class Host(Protocol):
    """What an instance needs from the orchestrator (the effects it does not own)."""

    async def launch(self, config: ModelConfig, device: str | None = None) -> WorkerHandle:
        """A started (not yet healthy) handle for ``config``, on ``device`` (a GPU, or None)."""
        ...

    async def reserve(self, instance: ModelInstance, on_reserved: Callable[[], None]) -> None:
        """Return once memory for ``instance`` is free, calling ``on_reserved`` (in the caller's
        task) at the moment it is taken; raise ``InsufficientMemory`` or ``Unavailable``."""
        ...

    async def measure(self, instance: ModelInstance, worker: WorkerHandle, *, after_load: bool) -> None: ...

    async def confirm_released(
        self, instance: ModelInstance, worker: WorkerHandle, pids: list[int]
    ) -> None: ...

    def event(self, event: str, instance: ModelInstance, details: dict[str, object]) -> None: ...


@dataclass(eq=False)
class _Start:
    future: asyncio.Future[WorkerHandle]


@dataclass(eq=False)
class _Stop:
    future: asyncio.Future[None] | None
    reason: str
    force: bool


@dataclass(eq=False)
class _Exited:
    worker: WorkerHandle
    error: str | None = None  # set when the worker is alive but was declared failed (heartbeat)


@dataclass(eq=False)
class _Wake:
    """Recompute the keep-alive deadline (a request ended, or the keep-alive changed)."""


_Command = _Start | _Stop | _Exited | _Wake


@dataclass(frozen=True, slots=True)
class ModelView:
    """What status endpoints show of one model (sizes in bytes; times are Unix seconds)."""

    id: str
    state: str
    kind: str
    engine: str
    loaded_at: float | None
    last_used: float | None
    expires_at: float | None  # None: not loaded, kept forever (or pinned), or busy
    in_flight: int
    queued: int  # waiting for the model to be ready, or for a slot of its worker
    priority: int
    pinned: bool
    keep_alive: float  # seconds; -1 forever
    estimated_bytes: int | None  # all devices
    measured_bytes: int | None  # all devices; from this or an earlier load with the same settings
    vram_bytes: int | None  # the GPU part of the footprint (measured, else estimated); None: no GPU use
    pid: int | None
    error: str | None = None  # why it failed (a crash, a stall, a failed load)


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """One replica of a model, as status endpoints show it."""

    id: str  # the instance key: "<model>" for replica 0, "<model>#<n>" for the others
    replica: int
    state: str
    device: str  # where its memory is: "ram", "gpu0", ...
    address: str | None
    in_flight: int
    queued: int
    requests_total: int
    measured_bytes: int | None
    pid: int | None


def instance_key(model: str, replica: int) -> str:
    """Unique per instance: the model's id for its first replica (so a single-replica model reads
    as before everywhere), ``<model>#<n>`` for the others."""
    return model if replica == 0 else f"{model}#{replica}"


@dataclass
class InstanceStats:
    loads: int = 0
    requests: int = 0
    crashes: int = 0
    load_seconds: float | None = None
    unloads: Counter[str] = field(default_factory=Counter)  # by Reason


class ModelInstance:
    def __init__(self, config: ModelConfig, host: Host, *, start_timeout: float, replica: int = 0):
        self.config = config
        self.replica = replica
        self.key = instance_key(config.id, replica)
        self._host = host
        self._start_timeout = start_timeout
        self.state = State.STOPPED
        self.worker: WorkerHandle | None = None
        self.error: str | None = None
        self.failures = 0  # in a row: load errors and crashes, see restart back-off
        self._failed_at: float | None = None  # monotonic
        self.loaded_at: float | None = None
        self.last_used: float = 0.0
        self.in_flight = 0
        self.waiting = 0
        # lifecycle controls: the config's, overridden by requests and /models/load until unloaded
        self.keep_alive = config.keep_alive
        self.priority = config.priority
        self.pinned = config.pinned
        # bytes per device, set by the host
        self.estimated: dict[str, int] | None = None
        self.measured: dict[str, int] | None = None
        self.stats = InstanceStats()
        self.on_change: Callable[[], None] | None = None  # a request ended or the state changed
        self.device: str | None = None  # the GPU it is placed on while it holds memory (None: RAM only)
        self.retired = False  # its model was removed or replaced by a config reload: never started again
        self._commands: asyncio.Queue[_Command] = asyncio.Queue()
        self._pending_start: asyncio.Future[WorkerHandle] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._force = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None
        self._measuring: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def queued(self) -> int:
        return self.waiting + max(0, self.in_flight - self.config.parallel)

    def footprint(self) -> dict[str, int] | None:
        """What the planner counts for this model: measured if ever measured, else estimated."""
        return self.measured or self.estimated

    def expires_at(self) -> float | None:
        if (
            self.state is not State.READY
            or self.in_flight
            or self.waiting
            or self.pinned
            or self.keep_alive < 0
            or self.replica < self.config.replicas.min  # replicas.min are kept loaded
        ):
            return None
        return self.last_used + self.keep_alive

    def replica_view(self) -> ReplicaView:
        on_gpu = any(d.startswith("gpu") and size for d, size in (self.footprint() or {}).items())
        return ReplicaView(
            id=self.key,
            replica=self.replica,
            state=str(self.state),
            device=self.device or ("gpu0" if on_gpu else "ram"),
            address=self.worker.address if self.worker is not None else None,
            in_flight=self.in_flight,
            queued=self.queued,
            requests_total=self.stats.requests,
            measured_bytes=sum(self.measured.values()) if self.measured is not None else None,
            pid=self.worker.pid if self.worker is not None else None,
        )

    def view(self) -> ModelView:
        footprint = self.footprint() or {}
        vram = sum(size for device, size in footprint.items() if device.startswith("gpu"))
        return ModelView(
            id=self.id,
            state=str(self.state),
            kind=self.config.kind,
            engine=self.config.engine,
            loaded_at=self.loaded_at,
            last_used=self.last_used or None,
            expires_at=self.expires_at(),
            in_flight=self.in_flight,
            queued=self.queued,
            priority=self.priority,
            pinned=self.pinned,
            keep_alive=self.keep_alive,
            estimated_bytes=sum(self.estimated.values()) if self.estimated is not None else None,
            measured_bytes=sum(self.measured.values()) if self.measured is not None else None,
            vram_bytes=vram or None,
            pid=self.worker.pid if self.worker is not None else None,
            error=self.error,
        )

    # -- API for other tasks -----------------------------------------------------------
    def apply_controls(
        self, *, keep_alive: float | None = None, priority: int | None = None, pinned: bool | None = None
    ) -> None:
        """A request's lifecycle controls. The keep-alive is each request's own (None: the
        model's default), as in Ollama; priority and pin stay until changed or unloaded."""
        before = (self.keep_alive, self.pinned)
        self.keep_alive = self.config.keep_alive if keep_alive is None else keep_alive
        if priority is not None:
            self.priority = priority
        if pinned is not None:
            self.pinned = pinned
        if (self.keep_alive, self.pinned) != before:
            self._wake()  # the expiry moved

    def reconfigure(self, config: ModelConfig) -> None:
        """A config reload changed only what needs no new backend (``reload.HOT_FIELDS``): the
        lifecycle controls go back to the new config's."""
        self.config = config
        self._reset_controls()
        self._wake()

    async def acquire(self) -> WorkerHandle:
        """A ready worker with the caller counted in flight; loads the model if needed.

        The caller must call ``request_finished()`` exactly once afterwards (``Lease.release``).
        """
        while True:
            worker = self._ready_worker()
            if worker is not None:
                self.request_started()
                return worker
            self.waiting += 1
            try:
                await self.ensure_ready()
            finally:
                self.waiting -= 1

    async def ensure_ready(self) -> WorkerHandle:
        """A ready worker, starting one if needed; concurrent callers share one start."""
        worker = self._ready_worker()
        if worker is not None:
            return worker
        if self._pending_start is None or self._pending_start.done():
            self._pending_start = asyncio.get_running_loop().create_future()
            self._send(_Start(self._pending_start))
        return await asyncio.shield(self._pending_start)

    async def stop(self, reason: str = Reason.MANUAL, *, force: bool = False) -> None:
        """Unload: stop taking requests, let those in flight finish (or cut them off with
        ``force``: their streams end with an error event), stop the worker, confirm the memory
        is released."""
        if force:
            self._force.set()  # also ends a drain that is already under way
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._send(_Stop(future, reason, force))
        await asyncio.shield(future)

    async def measured_after_load(self, timeout: float = 60.0) -> None:
        """Wait for the warm-up measurement that follows a load (if one is under way)."""
        task = self._measuring
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=timeout)

    def worker_unresponsive(self, worker: WorkerHandle, error: str) -> None:
        """``worker`` stopped answering: the owner kills it and handles it as a crash."""
        self._send(_Exited(worker, error))

    def backoff_remaining(self) -> float:
        """Seconds before the model may be started again (0: now)."""
        if self.failures <= FREE_RESTARTS or self._failed_at is None:
            return 0.0
        delay = min(BACKOFF_BASE_SECONDS * 2 ** (self.failures - FREE_RESTARTS - 1), BACKOFF_MAX_SECONDS)
        return max(0.0, self._failed_at + delay - time.monotonic())

    def request_started(self) -> None:
        self.in_flight += 1
        self.stats.requests += 1
        self._idle.clear()
        self.last_used = time.time()

    def request_finished(self) -> None:
        self.in_flight -= 1
        self.last_used = time.time()
        if self.on_change is not None:
            self.on_change()
        if self.in_flight == 0:
            self._idle.set()
            self._wake()
            self._host.event("idle", self, {})

    async def close(self) -> None:
        """Stop the worker and the owner task (gateway shutdown)."""
        if self._owner is None:
            return
        try:
            await self.stop(Reason.SHUTDOWN, force=True)
        finally:
            self._owner.cancel()
            self._owner = None

    def _ready_worker(self) -> WorkerHandle | None:
        worker = self.worker
        if self.state is State.READY and worker is not None and worker.alive:
            return worker
        return None

    # -- the owner -------------------------------------------------------------------
    def _send(self, command: _Command) -> None:
        if self._owner is None or self._owner.done():
            self._owner = asyncio.create_task(self._run(), name=f"instance:{self.key}")
        self._commands.put_nowait(command)

    def _wake(self) -> None:
        if self._owner is not None and not self._owner.done():
            self._commands.put_nowait(_Wake())

    def _set_state(self, state: State, **details: object) -> None:
        previous, self.state = self.state, state
        if self.on_change is not None:
            self.on_change()
        log.debug("%s: %s -> %s", self.key, previous, state)
        self._host.event(str(state), self, {"previous": str(previous), **details})

    def _idle_timeout(self) -> float | None:
        expires = self.expires_at()
        return None if expires is None else max(0.0, expires - time.time())

    async def _run(self) -> None:
        while True:
            try:
                command = await asyncio.wait_for(self._commands.get(), self._idle_timeout())
            except TimeoutError:
                expires = self.expires_at()
                if expires is not None and time.time() >= expires:
                    await self._stop_worker(Reason.IDLE, force=False)
                continue
            if isinstance(command, _Start):
                await self._start(command.future)
            elif isinstance(command, _Stop):
                await self._stop_worker(command.reason, force=command.force)
                if command.future is not None and not command.future.done():
                    command.future.set_result(None)
            elif isinstance(command, _Exited) and command.worker is self.worker:
                if command.error is not None:
                    self.error = command.error  # before the kill: requests that break see the reason
                    command.worker.kill_all()  # its sockets close: in-flight requests fail now
                    await command.worker.wait_exited()
                self._crashed(command.worker, command.error)

    async def _start(self, future: asyncio.Future[WorkerHandle]) -> None:
        if self.state is State.READY and self.worker is not None and self.worker.alive:
            if not future.done():
                future.set_result(self.worker)
            return
        if self.retired:
            message = f"model '{self.id}' was reloaded with a new config while the request waited; retry"
            _fail(future, Unavailable(message, retry_after=1))
            return
        if self.worker is not None and not self.worker.alive:
            self._crashed(self.worker)  # died before its exit was reported
        if (wait := self.backoff_remaining()) > 0:
            message = (
                f"model '{self.id}' failed {self.failures} times in a row (last: {self.error}); "
                f"next start in {math.ceil(wait)} s"
            )
            _fail(future, Unavailable(message, retry_after=math.ceil(wait)))
            return
        started = time.perf_counter()
        worker: WorkerHandle | None = None
        try:
            await self._host.reserve(self, lambda: self._set_state(State.STARTING))
        except Exception as exc:  # noqa: BLE001  (no memory, or a bug: the waiting callers must hear of it)
            _fail(
                future,
                exc if isinstance(exc, NanoserveError) else EngineError(f"{type(exc).__name__}: {exc}"),
            )
            return
        try:
            worker = await self._host.launch(self.config, self.device)
            await worker.wait_healthy(self._start_timeout)
        except Exception as exc:  # noqa: BLE001  (any load failure is the model's FAILED state)
            if worker is not None:
                await worker.stop(timeout=2.0)
            self.error = str(exc)
            self._count_failure(ran_for=None)
            self._set_state(State.FAILED, error=self.error)
            _fail(future, exc if isinstance(exc, EngineError) else EngineError(self.error))
            return
        self.worker = worker
        self.error = None
        self.loaded_at = time.time()
        self.last_used = self.loaded_at
        self.stats.loads += 1
        self.stats.load_seconds = time.perf_counter() - started
        asyncio.create_task(self._watch(worker), name=f"watch:{self.id}:{worker.address}")
        self._set_state(State.READY, load_seconds=self.stats.load_seconds, pid=worker.pid)
        self._host.event("loaded", self, {"seconds": self.stats.load_seconds, "pid": worker.pid})
        self._measuring = asyncio.create_task(
            self._host.measure(self, worker, after_load=True), name=f"measure:{self.id}"
        )
        if not future.done():
            future.set_result(worker)

    async def _watch(self, worker: WorkerHandle) -> None:
        await worker.wait_exited()
        self._commands.put_nowait(_Exited(worker))

    def _crashed(self, worker: WorkerHandle, error: str | None = None) -> None:
        if self.state not in (State.READY, State.DRAINING):
            return
        self.stats.crashes += 1
        self.stats.unloads[Reason.CRASH] += 1
        self._count_failure(ran_for=time.time() - self.loaded_at if self.loaded_at is not None else None)
        self.worker = None
        self.loaded_at = None
        self.device = None
        self._reset_controls()
        self.error = error or worker.exit_reason()
        log.warning("%s: %s", self.key, self.error)
        worker.kill_all()  # anything it started goes with it
        self._set_state(State.FAILED, reason=Reason.CRASH, error=self.error, in_flight=self.in_flight)
        self._host.event("unloaded", self, {"reason": str(Reason.CRASH), "forced": False})
        asyncio.create_task(worker.client.close())

    def _count_failure(self, ran_for: float | None) -> None:
        if ran_for is not None and ran_for >= STABLE_SECONDS:
            self.failures = 0
        self.failures += 1
        self._failed_at = time.monotonic()
        if self.failures > FREE_RESTARTS:
            log.warning(
                "%s: failed %d times in a row; next start in %.0f s",
                self.id,
                self.failures,
                self.backoff_remaining(),
            )

    async def _stop_worker(self, reason: str, *, force: bool) -> None:
        worker = self.worker
        if worker is None:
            if self.state is State.FAILED:
                self._set_state(State.STOPPED, reason=reason)
            self._force.clear()
            return
        if not force and self.in_flight:
            self._set_state(State.DRAINING, reason=reason)
            idle = asyncio.create_task(self._idle.wait())
            forced = asyncio.create_task(self._force.wait())
            await asyncio.wait({idle, forced}, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            forced.cancel()
            force = self._force.is_set()
        self._force.clear()
        self._set_state(State.STOPPING, reason=reason, forced=force)
        self.worker = None
        if worker.alive:
            self.failures = 0  # it lived until we stopped it
        if self._measuring is not None:
            self._measuring.cancel()
        if worker.alive:
            await self._host.measure(self, worker, after_load=False)
        pids = await asyncio.to_thread(worker.pids)
        if force and self.in_flight:  # what the requests cut off will say
            self.error = f"the model was unloaded ({reason}, forced) while the request was in flight"
        # A forced unload kills at once; at shutdown the gateway has already waited its grace for
        # requests, and a SIGTERM lets the worker close its engine and flush its traces.
        await worker.stop(kill=force and reason != Reason.SHUTDOWN)
        await self._host.confirm_released(self, worker, pids)
        self.loaded_at = None
        self.device = None
        self._reset_controls()
        self.stats.unloads[reason] += 1
        self._set_state(State.STOPPED, reason=reason)
        self._host.event("unloaded", self, {"reason": reason, "forced": force})

    def _reset_controls(self) -> None:
        self.keep_alive = self.config.keep_alive
        self.priority = self.config.priority
        self.pinned = self.config.pinned


def _fail(future: asyncio.Future[WorkerHandle], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # mark retrieved: callers may all have gone


@dataclass
class Lease:
    """A request's hold on a ready instance; ``release()`` exactly once when the response ends."""

    instance: ModelInstance
    worker: WorkerHandle
    released: bool = field(default=False)
    on_release: Callable[[], None] | None = None  # e.g. give back a slot of a capped backend

    def release(self) -> None:
        if not self.released:
            self.released = True
            if self.on_release is not None:
                self.on_release()
            self.instance.request_finished()
