"""Heartbeats: the gateway checks each loaded worker's ``/health`` periodically.

A worker that misses ``failures`` checks in a row (no answer within ``timeout``, or not
``200``) is declared failed: its owner kills it and treats it as a crash, so its in-flight
requests fail with an error naming the reason and it shows up as an unload with reason
``crash``. A crashed worker is restarted right away if it was serving requests or its model is
pinned, otherwise on the next request for its model (``restart_now``). "Serving" means requests
were in flight when the owner saw the crash, or a request broke on the worker since it became
ready: a broken stream is usually noticed before the process exit is.

A worker whose process exits is noticed at once by its owner; heartbeats catch the ones that
are alive but stuck (a hung engine, a blocked event loop, SIGSTOP).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from nanoserve.errors import NanoserveError

if TYPE_CHECKING:
    from nanoserve.observability.metrics import GatewayMetrics
    from nanoserve.orchestrator.instance import ModelInstance
    from nanoserve.orchestrator.orchestrator import Orchestrator
    from nanoserve.orchestrator.process import WorkerProcess

log = logging.getLogger("nanoserve.heartbeat")

CHECKED_STATES = ("ready", "draining")


def restart_now(*, serving: bool, pinned: bool, accepting: bool) -> bool:
    """After a crash: start a new worker at once (True), or on the model's next request."""
    return accepting and (serving or pinned)


def failed_after(misses: int, failures: int) -> bool:
    return misses >= failures


class Heartbeat:
    def __init__(
        self,
        orchestrator: Orchestrator,
        *,
        interval: float,
        timeout: float,
        failures: int,
        metrics: GatewayMetrics | None = None,
    ):
        self.orchestrator = orchestrator
        self.interval = interval
        self.timeout = timeout
        self.failures = failures
        self.metrics = metrics
        self._misses: dict[WorkerProcess, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._restarts: set[asyncio.Task[Any]] = set()
        self._broken: set[str] = set()  # models with a request broken by their worker since it was ready

    def start(self) -> None:
        """Check every ``interval`` seconds (0 disables the checks; crash restarts still apply)."""
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._restarts) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # the loop must survive anything one round does
                log.exception("heartbeat round failed")

    async def check(self) -> None:
        """One round: check every loaded worker concurrently, fail those that missed too many."""
        targets = [
            (instance, instance.worker)
            for instance in self.orchestrator.instances.values()
            if instance.state in CHECKED_STATES and instance.worker is not None and instance.worker.alive
        ]
        answers = await asyncio.gather(*(self._healthy(worker) for _, worker in targets))
        live = {worker for _, worker in targets}
        self._misses = {w: n for w, n in self._misses.items() if w in live}
        for (instance, worker), healthy in zip(targets, answers):
            assert worker is not None
            if healthy:
                self._misses.pop(worker, None)
                continue
            misses = self._misses[worker] = self._misses.get(worker, 0) + 1
            if self.metrics is not None:
                self.metrics.heartbeat_misses.labels(instance.id).inc()
            log.warning(
                "worker for %s (pid %d) missed health check %d/%d",
                instance.id,
                worker.pid,
                misses,
                self.failures,
            )
            if failed_after(misses, self.failures):
                del self._misses[worker]
                instance.worker_unresponsive(
                    worker,
                    f"worker (pid {worker.pid}) stopped answering health checks "
                    f"({misses} missed, {self.timeout:g}s timeout each)",
                )

    async def _healthy(self, worker: WorkerProcess) -> bool:
        try:
            status, _ = await worker.client.get_json("/health", timeout=self.timeout)
        except NanoserveError:
            return False
        return status == 200

    # -- the orchestrator's listener: restart policy after a crash ------------------------
    def on_event(self, event: str, instance: ModelInstance, details: dict[str, Any]) -> None:
        if event == "ready":
            self._broken.discard(instance.id)
        if event != "failed" or details.get("reason") != "crash":
            return
        serving = int(details.get("in_flight") or 0) > 0 or instance.id in self._broken
        self._broken.discard(instance.id)
        if restart_now(serving=serving, pinned=instance.config.pinned, accepting=self.orchestrator.accepting):
            self._restart_soon(instance)

    def request_broken(self, model: str) -> None:
        """A request failed because its worker broke off (reported when its response ends)."""
        instance = self.orchestrator.instances.get(model)
        if instance is None:
            return
        if instance.state == "failed":  # the crash was seen first
            if restart_now(
                serving=True, pinned=instance.config.pinned, accepting=self.orchestrator.accepting
            ):
                self._restart_soon(instance)
        else:
            self._broken.add(model)

    def _restart_soon(self, instance: ModelInstance) -> None:
        task = asyncio.get_running_loop().create_task(self._restart(instance), name=f"restart:{instance.id}")
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, instance: ModelInstance) -> None:
        try:
            await instance.ensure_ready()
        except NanoserveError as exc:  # the load failed: the next request tries again
            log.error("restarting the worker for %s failed: %s", instance.id, exc)
