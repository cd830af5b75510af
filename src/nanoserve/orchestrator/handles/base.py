"""What runs one model instance: the ``WorkerHandle`` protocol between an instance's owner and its backend.

The instance's state machine (``instance.py``) never sees a pid, a process group or a URL of its
own: it starts a handle, waits until it is healthy, routes requests to its ``client``, watches
for its exit and stops it. What is behind the handle differs:

* ``LocalWorker``: our own ``nanoserve worker`` process (``local.py``);
* ``CommandWorker``: any OpenAI-compatible server started from a command template, such as
  ``llama-server`` or ``vllm serve`` (``command.py``);
* ``RemoteWorker``: an OpenAI-compatible URL that someone else runs (``remote.py``): nothing to
  start or stop, no memory here.

How a request's body is rewritten for a backend is the model's translator's (``translate.py``),
applied before a backend is even acquired, so a request it cannot serve costs no load.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nanoserve.errors import EngineError, WorkerUnavailable

if TYPE_CHECKING:
    from nanoserve.orchestrator.memory import Nvml
    from nanoserve.wire.client import WorkerClient

log = logging.getLogger(__name__)

LOG_TAIL_BYTES = 4000


class WorkerHandle(Protocol):
    """One running backend of a model instance. Created stopped; ``start`` once, ``stop`` once."""

    model: str
    client: WorkerClient  # talks to ``address``
    started_at: float
    metrics_path: str | None  # Prometheus text merged into the gateway's /metrics (None: none)
    slots: asyncio.Semaphore | None  # a cap on requests sent at once (None: the backend queues)

    @property
    def address(self) -> str:
        """Base URL requests go to (``http://127.0.0.1:PORT``, or a remote base)."""
        ...

    @property
    def pid(self) -> int | None:
        """The root process on this machine, None for a backend we do not run."""
        ...

    @property
    def alive(self) -> bool:
        """False once the backend has exited (or was stopped)."""
        ...

    @property
    def speaks_nanoserve(self) -> bool:
        """Our worker protocol (docs/worker-protocol.md): extension fields, warm-up header, /info."""
        ...

    async def start(self) -> None:
        """Start the backend (returns before it is healthy)."""
        ...

    async def wait_healthy(self, timeout: float) -> None:
        """Return once the backend answers its health check; ``EngineError`` (with the log's tail)
        if it exits or fails to load, ``WorkerUnavailable`` (503) if ``timeout`` passes first (per
        load phase, for a backend that reports them: ``poll_health``)."""
        ...

    async def healthy(self, timeout: float) -> bool:
        """One health check (heartbeats)."""
        ...

    async def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        """Graceful stop (then forced after ``timeout``), or forced at once with ``kill``."""
        ...

    async def wait_exited(self) -> None:
        """Return when the backend has exited on its own or been stopped."""
        ...

    def exit_reason(self) -> str:
        """How it ended, for errors and logs ("worker (pid 12) exited with code -9")."""
        ...

    def memory(self, gpu: Nvml) -> dict[str, int] | None:
        """Bytes per device the backend holds on this machine now (blocking); None if unknown,
        ``{}`` for a backend that holds nothing here."""
        ...

    def reset_peak(self) -> None:
        """Forget the peak memory so far (after a load; blocking)."""
        ...

    def pids(self) -> list[int]:
        """Processes whose exit confirms the memory is released (blocking); [] for remote."""
        ...

    def kill_all(self) -> None:
        """Kill everything the backend started, at once (after a crash, or memory not released)."""
        ...

    def log_tail(self) -> str: ...


async def exited_within(handle: WorkerHandle, seconds: float) -> bool:
    """True once ``handle`` has exited (waiting up to ``seconds`` for it)."""
    if handle.alive:
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(handle.wait_exited())), seconds)
        except TimeoutError:
            return False
    return True


def read_log_tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


# The longest pause between two health polls of a loading backend: what a cold start may lose
# after the backend is ready (a local poll costs well under a millisecond).
HEALTH_POLL_MAX = 0.05


# Retry-After of a load that timed out: the next request starts the load again at once (the
# instance's back-off applies after repeated failures).
LOAD_TIMEOUT_RETRY_AFTER = 1


async def poll_health(
    handle: WorkerHandle, check: HealthCheck, timeout: float, *, setting: str = "worker_start_timeout"
) -> None:
    """Poll ``check`` with growing intervals (never a fixed sleep) until it says ready.

    ``check`` returns True (ready), False (not yet: not listening yet, or loading), a load phase
    (not yet: ``"loading"``, ``"converting"``, as our worker's ``/health`` reports it), or raises
    ``EngineError`` (the backend reported a load failure). Each phase gets ``timeout`` of its
    own: a change of the reported phase restarts the deadline, so the process start, a one-time
    conversion of the weights and the load after it each get it; a backend that reports no phase
    gets ``timeout`` in all, as before phases. A backend that exits meanwhile fails at once with
    the tail of its log (500); a timeout is a ``WorkerUnavailable`` (503, Retry-After) naming the
    phase and ``setting``, the option that sets ``timeout``.
    """
    began = time.monotonic()
    deadline = began + timeout
    phase: str | None = None  # None: the process start, until the backend reports a phase
    delay = 0.02
    while True:
        if not handle.alive:
            raise EngineError(
                f"{handle.exit_reason()} while loading '{handle.model}'. Log:\n{handle.log_tail()}"
            )
        state = await check()
        if state is True:
            return
        now = time.monotonic()
        if isinstance(state, str) and state != phase:
            if phase is not None:
                log.info("%s: %s after %.1f s %s", handle.model, state, now - began, phase)
            phase, began, deadline = state, now, now + timeout
        if now >= deadline:
            what = (
                f"was still {phase} after {timeout:.0f}s ({setting}, counted per load phase: raise "
                "it for a slow machine or a first load that converts weights)"
                if phase is not None
                else f"did not become healthy within {timeout:.0f}s (raise {setting} for a slow machine)"
            )
            raise WorkerUnavailable(
                f"the backend of '{handle.model}' {what}. Log:\n{handle.log_tail()}",
                retry_after=LOAD_TIMEOUT_RETRY_AFTER,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, HEALTH_POLL_MAX)


class HealthCheck(Protocol):
    async def __call__(self) -> bool | str: ...


async def get_ok(client: WorkerClient, path: str, timeout: float) -> bool:
    """A GET answered 200 (a transport error or any other status: no)."""
    try:
        status, _ = await client.get_json(path, timeout=timeout)
    except WorkerUnavailable:
        return False
    return status == 200
