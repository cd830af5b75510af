"""Stall detection from the requests' own progress, not only the heartbeat.

A worker stopped (SIGSTOP) or stuck keeps its connections open: its streams simply stop, and the
heartbeat needs ``failures`` x ``timeout`` seconds to notice. Here every request at a backend is
counted while it is open, and every byte it receives is progress. When a backend has requests
open and none of them made progress for ``seconds``, it is asked for ``/health`` once with a
short deadline: a busy backend (a long prefill, a plain request still generating) answers and
is left alone; one that does not is reported to its owner (``worker_unresponsive``), which kills
it and handles it as a crash: its streams end with an error event naming the stall, the status
says ``failed``, and the next request starts a fresh backend instead of waiting behind it.

Only our own workers are watched (``kind == "worker"``): their ``/health`` is answered by the
event loop whatever the engine is doing. A managed server's or a remote URL's health check may
wait behind a generation (llama-cpp-python's server takes one lock for ``/v1/models`` and for
completions), so a slow token there would look like a stall; those keep the heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nanoserve.orchestrator.handles import WorkerHandle
    from nanoserve.orchestrator.orchestrator import Orchestrator

log = logging.getLogger("nanoserve.supervisor")
WATCHED_KIND = "worker"  # our own workers (handles/local.py)


class Activity:
    """The open requests of one backend and when any of them last made progress."""

    __slots__ = ("last", "open")

    def __init__(self) -> None:
        self.open = 0
        self.last = time.monotonic()

    def progress(self) -> None:
        self.last = time.monotonic()


def suspect(activity: Activity, now: float, seconds: float) -> bool:
    """Pure decision: requests are open and none made progress for ``seconds``."""
    return activity.open > 0 and now - activity.last > seconds


class StallWatch:
    def __init__(self, orchestrator: Orchestrator, *, seconds: float, probe_timeout: float):
        self.orchestrator = orchestrator
        self.seconds = seconds
        self.probe_timeout = probe_timeout
        self._activity: dict[WorkerHandle, Activity] = {}
        self._task: asyncio.Task[None] | None = None

    def begin(self, worker: WorkerHandle) -> Activity:
        """A request was sent to ``worker``; call ``end`` with the result when it closes."""
        activity = self._activity.get(worker)
        if activity is None:
            activity = self._activity[worker] = Activity()
        if activity.open == 0:
            activity.progress()
        activity.open += 1
        return activity

    def end(self, worker: WorkerHandle, activity: Activity) -> None:
        activity.open -= 1
        if activity.open <= 0 and self._activity.get(worker) is activity:
            del self._activity[worker]

    def start(self) -> None:
        if self.seconds > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="stall-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.seconds / 2))
            try:
                await self.check()
            except Exception:  # the loop must survive anything one round does
                log.exception("stall check failed")

    async def check(self) -> None:
        now = time.monotonic()
        suspects = [
            (w, a)
            for w, a in self._activity.items()
            if getattr(w, "kind", None) == WATCHED_KIND and suspect(a, now, self.seconds)
        ]
        if not suspects:
            return
        answers = await asyncio.gather(*(w.healthy(self.probe_timeout) for w, _ in suspects))
        for (worker, activity), healthy in zip(suspects, answers, strict=True):
            if healthy:  # busy, not stuck
                activity.progress()
                continue
            instance = next((i for i in self.orchestrator.instances.values() if i.worker is worker), None)
            if instance is None:
                continue
            idle = time.monotonic() - activity.last
            what = f"pid {worker.pid}" if worker.pid is not None else worker.address
            reason = (
                f"the backend ({what}) stalled: no progress on its {activity.open} open request(s) "
                f"for {idle:.0f}s and no answer to a health check within {self.probe_timeout:g}s"
            )
            log.warning("%s: %s", instance.id, reason)
            self._activity.pop(worker, None)
            instance.worker_unresponsive(worker, reason)
