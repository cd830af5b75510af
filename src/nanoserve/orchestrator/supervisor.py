"""Supervision of the workers, in one place: heartbeats, restarts, the dead-worker retry and
unload-after-request.

* Heartbeats: each loaded backend is health-checked every ``interval`` seconds (its handle knows
  how: ``/health`` for our workers, the configured path for a managed server, ``/v1/models`` for a
  remote URL). One that misses ``failures`` checks in a row (no answer within ``timeout``, or not
  200) is declared failed: its owner kills it and treats it as a crash, so its in-flight requests
  fail with an error naming the reason. Each miss is an event (``heartbeat_missed``) that
  observability counts.
* Restarts: after a crash the backend is started again at once if it was serving requests or its
  model is pinned, otherwise on the model's next request (``restart_now``). "Serving" means
  requests were in flight when the owner saw the crash, or a request broke on the backend since
  it became ready (``worker_broke``): a broken stream is usually noticed before the exit is. The
  instance's own back-off (``instance.py``) still applies to either.
* The dead-worker retry: a request whose connection is refused by a backend that has just died
  (nothing was sent) is retried once on a fresh backend (``send``).
* ``keep_alive`` 0: the model is unloaded as soon as the request ends, unless another holds it
  (``finish``).

A process that exits is noticed at once by its owner; heartbeats catch the ones that are alive
but stuck (a hung engine, a blocked event loop, SIGSTOP) and remote servers that went away, and
the stall watch (``stalls.py``) catches a stuck backend within seconds from its requests' own
progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nanoserve.errors import Conflict, NanoserveError, WorkerUnavailable
from nanoserve.orchestrator.handles import WorkerHandle, exited_within
from nanoserve.orchestrator.instance import Lease, ModelInstance
from nanoserve.orchestrator.limits import Admission, Ticket
from nanoserve.orchestrator.router import NO_AFFINITY, Affinity
from nanoserve.orchestrator.scaling import desired_replicas
from nanoserve.orchestrator.stalls import Activity, StallWatch
from nanoserve.wire.headers import TIME_LIMIT_HEADER

if TYPE_CHECKING:
    from collections.abc import Mapping

    from nanoserve.orchestrator.handles import Translator
    from nanoserve.orchestrator.registry import Registry
    from nanoserve.orchestrator.replicas import ReplicaGroup
    from nanoserve.orchestrator.scaling import GroupLoad
    from nanoserve.wire.client import WorkerResponse


class Supervised(Protocol):
    """What the supervisor needs of the orchestrator (which owns it)."""

    accepting: bool
    registry: Registry
    instances: dict[str, ModelInstance]
    groups: dict[str, ReplicaGroup]
    translators: dict[str, Translator]

    async def acquire(
        self, name: str, *, keep_alive: float | None, priority: int | None, affinity: Affinity
    ) -> Lease: ...

    async def unload(self, name: str, *, force: bool = False, reason: str = ...) -> ModelInstance: ...

    async def rescale(self, group: ReplicaGroup, want: int, *, load: GroupLoad | None = None) -> None: ...

    def emit(self, event: str, instance: ModelInstance, details: dict[str, Any]) -> None: ...


log = logging.getLogger("nanoserve.supervisor")

CHECKED_STATES = ("ready", "draining")
SCALE_TICK_SECONDS = 0.25  # how often replica counts are looked at
EXIT_GRACE_SECONDS = 2.0  # how long a refused connection waits to see its worker's exit


def restart_now(*, serving: bool, pinned: bool, accepting: bool) -> bool:
    """After a crash: start a new worker at once (True), or on the model's next request."""
    return accepting and (serving or pinned)


def failed_after(misses: int, failures: int) -> bool:
    return misses >= failures


@dataclass(eq=False)
class Sent:
    """A request at a backend: the lease it holds and the backend's response (body unread).

    ``acquire_seconds`` is the time spent getting a ready backend (loading the model, waiting).
    """

    lease: Lease
    response: WorkerResponse
    acquire_seconds: float
    ticket: Ticket  # its deadline and its place under the gateway's cap (limits.py)
    unload_after: bool = False
    finished: bool = field(default=False)
    activity: Activity | None = None  # the stall watch's count of this backend's open requests


async def _take_slot(lease: Lease) -> None:
    """Wait for one of the backend's slots, if it caps requests sent at once; the lease gives it
    back. Cancelled while waiting (the client left): the lease is released."""
    slots = lease.worker.slots
    if slots is None:
        return
    try:
        await slots.acquire()
    except BaseException:
        lease.release()
        raise
    lease.on_release = slots.release


class Supervisor:
    def __init__(self, orchestrator: Supervised, *, interval: float, timeout: float, failures: int):
        self.orchestrator = orchestrator
        self.interval = interval
        self.timeout = timeout
        self.failures = failures
        self._misses: dict[WorkerHandle, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._scaler: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # restarts and unloads under way
        self._broken: set[str] = set()  # models with a request broken by their worker since it was ready
        self.admission = Admission(orchestrator.settings.limits)
        checks = orchestrator.settings.observability
        self.stalls = StallWatch(
            orchestrator, seconds=checks.stall_seconds, probe_timeout=checks.stall_probe_timeout
        )

    # -- heartbeats ---------------------------------------------------------------------------
    def start(self) -> None:
        """Check every ``interval`` seconds (0 disables the checks; crash restarts still apply),
        and look at replica counts every ``SCALE_TICK_SECONDS``."""
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="heartbeat")
        if self._scaler is None:
            self._scaler = asyncio.create_task(self._scale_loop(), name="scaler")
        self.stalls.start()

    async def stop(self) -> None:
        """No more heartbeats or restarts (the gateway is stopping its workers)."""
        await self.stalls.stop()
        tasks = [t for t in (self._task, self._scaler, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._scaler = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # the loop must survive anything one round does
                log.exception("heartbeat round failed")

    async def check(self) -> None:
        """One round: check every loaded backend concurrently, fail those that missed too many."""
        targets = [
            (instance, instance.worker)
            for instance in self.orchestrator.instances.values()
            if instance.state in CHECKED_STATES and instance.worker is not None and instance.worker.alive
        ]
        answers = await asyncio.gather(*(worker.healthy(self.timeout) for _, worker in targets))
        live = {worker for _, worker in targets}
        self._misses = {w: n for w, n in self._misses.items() if w in live}
        for (instance, worker), healthy in zip(targets, answers, strict=True):
            assert worker is not None
            if healthy:
                self._misses.pop(worker, None)
                continue
            misses = self._misses[worker] = self._misses.get(worker, 0) + 1
            self.orchestrator.emit("heartbeat_missed", instance, {"misses": misses})
            log.warning(
                "backend of %s (%s) missed health check %d/%d",
                instance.id,
                worker.address,
                misses,
                self.failures,
            )
            if failed_after(misses, self.failures):
                del self._misses[worker]
                what = f"pid {worker.pid}" if worker.pid is not None else worker.address
                instance.worker_unresponsive(
                    worker,
                    f"backend ({what}) stopped answering health checks "
                    f"({misses} missed, {self.timeout:g}s timeout each)",
                )

    # -- replicas ---------------------------------------------------------------------------
    async def _scale_loop(self) -> None:
        while True:
            await asyncio.sleep(SCALE_TICK_SECONDS)
            try:
                self.scale_round(time.monotonic())
            except Exception:  # the loop must survive anything one round does
                log.exception("scaling round failed")

    def scale_round(self, now: float) -> None:
        """Track each model's queue pressure; start or stop replicas its settings ask for."""
        if not self.orchestrator.accepting:
            return
        for group in self.orchestrator.groups.values():
            if group.queued() > 0:
                group.pressure_since = group.pressure_since or now
            else:
                group.pressure_since = None
            settings = group.config.replicas
            if group.lock.locked() or (settings.max == 1 and settings.min == 0 and group.target is None):
                continue  # being rescaled, or a single on-demand instance (its keep-alive decides)
            load = group.load(now)
            want = desired_replicas(load, settings)
            if want != load.live:
                log.info("%s: %d replica(s) wanted, %d live", group.id, want, load.live)
                self.spawn(self.orchestrator.rescale(group, want, load=load), f"scale:{group.id}")

    # -- restarts ---------------------------------------------------------------------------
    def on_event(self, event: str, instance: ModelInstance, details: dict[str, Any]) -> None:
        """Called by the orchestrator for every instance event."""
        if event == "ready":
            self._broken.discard(instance.id)
        if event != "failed" or details.get("reason") != "crash":
            return
        serving = int(details.get("in_flight") or 0) > 0 or instance.id in self._broken
        self._broken.discard(instance.id)
        if restart_now(serving=serving, pinned=instance.config.pinned, accepting=self.orchestrator.accepting):
            self.spawn(self._restart(instance), f"restart:{instance.id}")

    def worker_broke(self, instance: ModelInstance) -> None:
        """A request failed because its backend broke off."""
        if instance.state == "failed":  # the crash was seen first
            if restart_now(
                serving=True, pinned=instance.config.pinned, accepting=self.orchestrator.accepting
            ):
                self.spawn(self._restart(instance), f"restart:{instance.id}")
        else:
            self._broken.add(instance.id)

    async def _restart(self, instance: ModelInstance) -> None:
        try:
            await instance.ensure_ready()
        except NanoserveError as exc:  # the load failed: the next request tries again
            log.error("restarting the backend of %s failed: %s", instance.id, exc)

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in a task kept until it ends (cancelled when supervision stops)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- requests ---------------------------------------------------------------------------
    async def send(
        self,
        model: str,
        path: str,
        body: bytes,
        *,
        keep_alive: float | None = None,
        priority: int | None = None,
        headers: Callable[[], Mapping[str, str] | None] | None = None,
        waiting: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
        affinity: Affinity = NO_AFFINITY,
    ) -> Sent:
        """A lease on the model's backend and its response to ``body`` (body unread).

        ``waiting`` wraps each wait for a ready backend (observability's queue timing);
        ``headers`` gives the headers to send, once a backend is ready (trace context). A
        backend found dead when connecting is restarted and the request retried once (nothing
        was sent, so this is safe).
        """
        config = self.orchestrator.registry.get(model)
        body = self.orchestrator.translators[config.id].prepare(path, body)
        ticket = self.admission.admit()  # 429 beyond limits.max_concurrent_requests
        try:
            for attempt in (1, 2):
                started = time.perf_counter()
                with waiting():
                    async with ticket.waiting_for(config.id):  # 408 at limits.request_timeout
                        lease = await self.orchestrator.acquire(
                            model, keep_alive=keep_alive, priority=priority, affinity=affinity
                        )
                        await _take_slot(lease)
                acquired = time.perf_counter() - started
                worker = lease.worker
                activity = self.stalls.begin(worker)  # watched from here: a stuck backend is found
                try:
                    extra = headers() if headers else None
                    sent_headers = {**(extra or {}), TIME_LIMIT_HEADER: ticket.time_limit_ms()}
                    response = await worker.client.post(path, body, headers=sent_headers)
                    activity.progress()
                    ticket.cut_off_after_deadline(response.close)
                    return Sent(
                        lease, response, acquired, ticket, unload_after=keep_alive == 0, activity=activity
                    )
                except WorkerUnavailable as exc:
                    self.stalls.end(worker, activity)
                    lease.release()
                    if worker.pid is None:  # a remote upstream: down until its health probe says otherwise
                        lease.instance.worker_unresponsive(
                            worker, f"the upstream {worker.address} failed: {exc}"
                        )
                        raise WorkerUnavailable(
                            f"model '{config.id}': the upstream {worker.address} is not reachable",
                            retry_after=1,
                        ) from exc
                    # A refused connection (or a pooled one reset) from a killed worker can come before
                    # the child is reaped: give its exit a moment to be seen, then retry on a fresh one.
                    if attempt == 2 or not await exited_within(worker, EXIT_GRACE_SECONDS):
                        self.worker_broke(lease.instance)
                        raise
                    log.warning("the backend of %s was gone; restarting it and retrying", lease.instance.id)
                except BaseException:
                    self.stalls.end(worker, activity)
                    lease.release()
                    raise
        except BaseException:
            ticket.release()
            raise
        raise AssertionError("unreachable")

    async def finish(self, sent: Sent) -> None:
        """The response has ended: release the lease; with ``keep_alive`` 0, unload the model now
        unless another request holds it. Idempotent; a finish cut short by cancellation is
        completed by the next call."""
        if sent.finished:
            return
        if sent.activity is not None:
            self.stalls.end(sent.lease.worker, sent.activity)
            sent.activity = None
        sent.ticket.release()
        sent.lease.release()  # first, and synchronous: the await below may be cancelled (client gone)
        sent.response.close()
        if sent.unload_after and not sent.lease.instance.in_flight:
            # Awaited before the response ends, so the client's next request sees the model gone;
            # in its own task, so a client that disconnects meanwhile does not cut the unload short.
            await asyncio.shield(self.spawn(self._unload_idle(sent.lease.instance), "unload-after"))
        sent.finished = True

    async def _unload_idle(self, instance: ModelInstance) -> None:
        try:
            await self.orchestrator.unload(instance.id, reason="keep_alive=0")
        except Conflict:
            pass  # a new request arrived meanwhile; it keeps the model
        except Exception:
            log.exception("unloading %s after a keep_alive=0 request failed", instance.id)
