"""One model instance and the single task that owns its state.

States::

    stopped ──start──▶ starting ──healthy──▶ ready ──stop──▶ draining ──idle──▶ stopping ──▶ stopped
       ▲                  │                    │                                               │
       └──────────────────┴──── failed ◀───────┘ (load error, or the worker died)              │
       └─────────────────────────────────────────────────────────────────────────────────────┘

Only the owner task (``_run``) changes ``state``. Everyone else sends it a command and awaits
the command's future: ``ensure_ready()`` for a ready worker (many concurrent callers share one
start), ``stop()`` to unload. Nobody reads the state and then acts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nanoserve.config import ModelConfig
from nanoserve.errors import Conflict, EngineError
from nanoserve.orchestrator.process import WorkerProcess

log = logging.getLogger("nanoserve.orchestrator")

Launcher = Callable[[ModelConfig], Awaitable[WorkerProcess]]
EventHook = Callable[[str, "ModelInstance", dict[str, object]], None]


class State(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(eq=False)
class _Start:
    future: asyncio.Future[WorkerProcess]


@dataclass(eq=False)
class _Stop:
    future: asyncio.Future[None]
    reason: str
    force: bool


@dataclass(eq=False)
class _Exited:
    worker: WorkerProcess
    error: str | None = None  # set when the worker is alive but was declared failed (heartbeat)


_Command = _Start | _Stop | _Exited


@dataclass(frozen=True, slots=True)
class ModelView:
    """What status endpoints show of one model (sizes in bytes; times are Unix seconds)."""

    id: str
    state: str
    kind: str
    engine: str
    loaded_at: float | None
    last_used: float | None
    expires_at: float | None  # None: not loaded, or kept forever, or busy
    in_flight: int
    priority: int
    pinned: bool
    estimated_bytes: int | None
    measured_bytes: int | None
    pid: int | None


@dataclass
class InstanceStats:
    loads: int = 0
    crashes: int = 0
    load_seconds: float | None = None


class ModelInstance:
    def __init__(
        self,
        config: ModelConfig,
        launcher: Launcher,
        *,
        start_timeout: float,
        on_event: EventHook | None = None,
    ):
        self.config = config
        self._launcher = launcher
        self._start_timeout = start_timeout
        self._on_event = on_event
        self.state = State.STOPPED
        self.worker: WorkerProcess | None = None
        self.error: str | None = None
        self.loaded_at: float | None = None
        self.last_used: float = 0.0
        self.in_flight = 0
        self.stats = InstanceStats()
        self._commands: asyncio.Queue[_Command] = asyncio.Queue()
        self._pending_start: asyncio.Future[WorkerProcess] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._owner: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.config.id

    def view(self) -> ModelView:
        keep_alive = self.config.keep_alive
        loaded = self.state in (State.READY, State.DRAINING)
        expires = None
        if loaded and keep_alive >= 0 and not self.in_flight:
            expires = self.last_used + keep_alive
        return ModelView(
            id=self.id,
            state=str(self.state),
            kind=self.config.kind,
            engine=self.config.engine,
            loaded_at=self.loaded_at,
            last_used=self.last_used or None,
            expires_at=expires,
            in_flight=self.in_flight,
            priority=self.config.priority,
            pinned=self.config.pinned,
            estimated_bytes=None,
            measured_bytes=None,
            pid=self.worker.pid if self.worker is not None else None,
        )

    # -- API for other tasks -----------------------------------------------------------
    async def ensure_ready(self) -> WorkerProcess:
        """A ready worker, starting one if needed; concurrent callers share one start."""
        worker = self.worker
        if self.state is State.READY and worker is not None and worker.alive:
            return worker
        if self._pending_start is None or self._pending_start.done():
            self._pending_start = asyncio.get_running_loop().create_future()
            self._send(_Start(self._pending_start))
        return await asyncio.shield(self._pending_start)

    async def stop(self, reason: str = "manual", *, force: bool = False) -> None:
        """Unload: drain in-flight requests (or cut them off with ``force``), stop the worker."""
        if not force and self.in_flight:
            raise Conflict(
                f"model '{self.id}' has {self.in_flight} request(s) in flight; "
                "retry when they finish or unload with force"
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._send(_Stop(future, reason, force))
        await asyncio.shield(future)

    def worker_unresponsive(self, worker: WorkerProcess, error: str) -> None:
        """``worker`` stopped answering: the owner kills it and handles it as a crash."""
        self._send(_Exited(worker, error))

    def request_started(self) -> None:
        self.in_flight += 1
        self._idle.clear()
        self.last_used = time.time()

    def request_finished(self) -> None:
        self.in_flight -= 1
        self.last_used = time.time()
        if self.in_flight == 0:
            self._idle.set()

    async def close(self) -> None:
        """Stop the worker and the owner task (gateway shutdown)."""
        if self._owner is None:
            return
        try:
            await self.stop("shutdown", force=True)
        finally:
            self._owner.cancel()
            self._owner = None

    # -- the owner -------------------------------------------------------------------
    def _send(self, command: _Command) -> None:
        if self._owner is None or self._owner.done():
            self._owner = asyncio.create_task(self._run(), name=f"instance:{self.id}")
        self._commands.put_nowait(command)

    def _set_state(self, state: State, **details: object) -> None:
        previous, self.state = self.state, state
        log.debug("%s: %s -> %s", self.id, previous, state)
        if self._on_event is not None:
            self._on_event(str(state), self, {"previous": str(previous), **details})

    async def _run(self) -> None:
        while True:
            command = await self._commands.get()
            if isinstance(command, _Start):
                await self._start(command.future)
            elif isinstance(command, _Stop):
                await self._stop(command)
            elif isinstance(command, _Exited) and command.worker is self.worker:
                if command.error is not None:
                    self.error = command.error  # before the kill: requests that break see the reason
                    with contextlib.suppress(ProcessLookupError):
                        command.worker.proc.kill()  # its sockets close: in-flight requests fail now
                    await command.worker.proc.wait()
                self._crashed(command.worker, command.error)

    async def _start(self, future: asyncio.Future[WorkerProcess]) -> None:
        if self.state is State.READY and self.worker is not None and self.worker.alive:
            if not future.done():
                future.set_result(self.worker)
            return
        if self.worker is not None and not self.worker.alive:
            self._crashed(self.worker)  # died before its exit was reported
        self._set_state(State.STARTING)
        started = time.perf_counter()
        worker: WorkerProcess | None = None
        try:
            worker = await self._launcher(self.config)
            await worker.wait_healthy(self._start_timeout)
        except Exception as exc:
            if worker is not None:
                await worker.stop(timeout=2.0)
            self.error = str(exc)
            self._set_state(State.FAILED, error=self.error)
            if not future.done():
                future.set_exception(exc if isinstance(exc, EngineError) else EngineError(self.error))
                future.exception()  # mark retrieved: callers may all have gone
            return
        self.worker = worker
        self.error = None
        self.loaded_at = time.time()
        self.last_used = self.loaded_at
        self.stats.loads += 1
        self.stats.load_seconds = time.perf_counter() - started
        asyncio.create_task(self._watch(worker), name=f"watch:{self.id}:{worker.pid}")
        self._set_state(State.READY, load_seconds=self.stats.load_seconds, pid=worker.pid)
        if not future.done():
            future.set_result(worker)

    async def _watch(self, worker: WorkerProcess) -> None:
        await worker.proc.wait()
        self._commands.put_nowait(_Exited(worker))

    def _crashed(self, worker: WorkerProcess, error: str | None = None) -> None:
        if self.state not in (State.READY, State.DRAINING):
            return
        self.stats.crashes += 1
        self.worker = None
        self.loaded_at = None
        self.error = error or f"worker (pid {worker.pid}) exited with code {worker.proc.returncode}"
        log.warning("%s: %s", self.id, self.error)
        self._set_state(State.FAILED, reason="crash", error=self.error, in_flight=self.in_flight)
        asyncio.create_task(worker.client.close())

    async def _stop(self, command: _Stop) -> None:
        worker = self.worker
        if worker is not None:
            if not command.force and self.in_flight:
                self._set_state(State.DRAINING, reason=command.reason)
                await self._idle.wait()
            self._set_state(State.STOPPING, reason=command.reason)
            self.worker = None
            await worker.stop()
            self.loaded_at = None
            self._set_state(State.STOPPED, reason=command.reason)
        elif self.state is State.FAILED:
            self._set_state(State.STOPPED, reason=command.reason)
        if not command.future.done():
            command.future.set_result(None)


@dataclass
class Lease:
    """A request's hold on a ready instance; ``release()`` exactly once when the response ends."""

    instance: ModelInstance
    worker: WorkerProcess
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.instance.request_finished()
