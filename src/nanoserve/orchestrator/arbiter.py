"""Memory for loads: plan (pure, ``planner.py``), then evict, wait or refuse (the effects).

One load is planned at a time (a lock); the instance being loaded becomes ``starting`` while the
lock is held, so the next plan already counts it. Loads go in the order they began waiting: a
load does not start (or drain anyone) while an earlier one could start. A load that needs memory held by busy models
waits (``scheduler.next_step``): they keep serving until ``memory.max_wait``, then they are
drained; after ``memory.load_timeout`` the waiting requests get a 503 naming what holds the
memory. The wait wakes whenever a model goes idle or changes state.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from nanoserve.config import MemorySettings
from nanoserve.errors import InsufficientMemory, Unavailable
from nanoserve.orchestrator.devices import relocate
from nanoserve.orchestrator.estimate import Estimator
from nanoserve.orchestrator.footprints import FootprintStore, footprint_key
from nanoserve.orchestrator.instance import HOLDS_MEMORY, ModelInstance, Reason, State
from nanoserve.orchestrator.planner import MIB, Plan, Resident, Snapshot, plan_load
from nanoserve.orchestrator.scheduler import Step, busy_retry_after, next_step

log = logging.getLogger("nanoserve.orchestrator")


def mib(size: int) -> int:
    return -(-size // MIB)  # rounded up: a need is never understated


@dataclass
class MemoryStats:
    evictions: int = 0
    drains: int = 0  # busy models stopped from taking requests so a waiting model could load
    rejections: Counter[str] = field(default_factory=Counter)  # requests: never_fits, no_room, queue_full


class MemoryArbiter:
    def __init__(
        self,
        instances: Mapping[str, ModelInstance],
        budgets: dict[str, int],
        estimator: Estimator,
        store: FootprintStore,
        settings: MemorySettings,
    ):
        self._instances = instances
        self.budgets = budgets
        self._estimator = estimator
        self._store = store
        self._settings = settings
        self.stats = MemoryStats()
        self.accepting = True
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._tickets = itertools.count()
        self._waiting: dict[str, tuple[int, dict[str, int]]] = {}  # loads in reserve(): ticket, need

    def changed(self) -> None:
        """Memory may have been freed or a model went idle: waiting loads look again."""
        self._changed.set()

    def close(self) -> None:
        self.accepting = False
        self.changed()

    def snapshot(self) -> Snapshot:
        residents = tuple(
            Resident(
                id=i.key,
                footprint=relocate(i.footprint() or {}, i.device),
                priority=i.priority,
                pinned=i.pinned,
                in_flight=i.in_flight + i.waiting,  # waiters of a ready model are about to be in flight
                last_used=i.last_used,
                evictable=i.state is State.READY,
            )
            for i in self._instances.values()
            if i.state in HOLDS_MEMORY
        )
        return Snapshot(self.budgets, residents)

    async def need(self, instance: ModelInstance) -> dict[str, int]:
        """What loading ``instance`` takes: its recorded footprint, else the estimate."""
        estimate = await self._estimator.estimate(instance.config)
        instance.estimated = estimate.devices
        if instance.measured is None:
            instance.measured = await asyncio.to_thread(self._store.footprint, footprint_key(instance.config))
        return relocate(instance.footprint() or {}, instance.device)

    async def plan(self, instance: ModelInstance, *, force: bool = False) -> Plan:
        """The dry run of a load: what would be evicted and what would be left."""
        need = await self.need(instance)
        return plan_load(self.snapshot(), instance.key, need, force=force)

    async def reserve(self, instance: ModelInstance, on_reserved: Callable[[], None]) -> None:
        need = await self.need(instance)
        started = time.monotonic()
        ticket = next(self._tickets)
        settings = self._settings
        self._waiting[instance.key] = (ticket, need)
        try:
            while True:
                async with self._lock:
                    if not self.accepting:
                        raise Unavailable("the server is shutting down", retry_after=5)
                    snapshot = self.snapshot()
                    plan = plan_load(snapshot, instance.key, need)
                    waited = time.monotonic() - started
                    decision = next_step(
                        plan,
                        waited=waited,
                        ready_for=self._ready_for(),
                        max_wait=settings.max_wait,
                        load_timeout=settings.load_timeout,
                    )
                    step = decision.step
                    if step in (Step.LOAD, Step.DRAIN) and self._earlier_fits(snapshot, ticket):
                        step = Step.WAIT  # an earlier waiting load goes first: no A-B-A-B
                    if step is Step.LOAD:
                        if not plan.evict:
                            on_reserved()
                            return
                        for victim in plan.evict:
                            await self._evict(victim, instance.key)
                        continue  # plan again with the memory given back
                    if step is Step.NEVER:
                        raise InsufficientMemory(self.never_message(plan))
                    if step is Step.BUSY:
                        raise Unavailable(
                            self.busy_message(plan), retry_after=busy_retry_after(settings.max_wait)
                        )
                    if step is Step.DRAIN:
                        for blocker in decision.drain:
                            self._drain(blocker, instance.key)
                    self._changed.clear()
                    timeout = decision.wake_in
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout)
                except TimeoutError:
                    pass
        finally:
            del self._waiting[instance.key]
            self.changed()

    def _ready_for(self) -> dict[str, float]:
        now = time.time()
        return {i.key: now - (i.loaded_at or now) for i in self._instances.values() if i.state is State.READY}

    def _earlier_fits(self, snapshot: Snapshot, ticket: int) -> bool:
        """Whether a load that has waited longer could go now (it goes first, when it wakes)."""
        return any(
            plan_load(snapshot, model, need).fits
            for model, (other, need) in self._waiting.items()
            if other < ticket
        )

    async def _evict(self, victim: str, for_model: str) -> None:
        log.info("evicting %s to make room for %s", victim, for_model)
        self.stats.evictions += 1
        await self._instances[victim].stop(Reason.MEMORY)

    def _drain(self, blocker: str, for_model: str) -> None:
        log.info("draining %s: %s has waited for its memory long enough", blocker, for_model)
        self.stats.drains += 1
        self.stats.evictions += 1
        task = asyncio.create_task(self._instances[blocker].stop(Reason.MEMORY), name=f"drain:{blocker}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- messages that say why, with numbers -----------------------------------------
    def never_message(self, plan: Plan) -> str:
        device = plan.device or "ram"
        need, budget = mib(plan.need.get(device, 0)), mib(plan.budgets.get(device, 0))
        message = f"model '{plan.model}' needs {need} MiB of {device} but the memory budget is {budget} MiB"
        if plan.pinned:
            held = sum((self._instances[p].footprint() or {}).get(device, 0) for p in plan.pinned)
            names = ", ".join(f"'{p}'" for p in plan.pinned)
            return f"{message}, of which {mib(held)} MiB is held by pinned model(s) {names}; unpin them to load it"
        if budget == 0 and device != "ram":
            return f"model '{plan.model}' needs {need} MiB of {device}, and this machine has no {device}"
        return f"{message}; it can never be loaded (raise memory.budget_mib, or lower its context_length or parallel)"

    def busy_message(self, plan: Plan) -> str:
        device = plan.device or "ram"
        need, budget = mib(plan.need.get(device, 0)), mib(plan.budgets.get(device, 0))
        snapshot = self.snapshot()
        used = snapshot.used(exclude=plan.model).get(device, 0)
        residents = sorted(snapshot.residents, key=lambda r: (r.pinned, r.priority, r.last_used))
        holders = [r.id for r in residents if r.footprint.get(device, 0) and r.id != plan.model]
        held = " and ".join(self._holder(name, device) for name in holders) or "models being loaded"
        return (
            f"no room for model '{plan.model}' right now: it needs {need} MiB of {device}, "
            f"{max(0, budget - mib(used))} MiB of the {budget} MiB budget is free, and the rest is held by "
            f"{held}; retry later"
        )

    def _holder(self, name: str, device: str) -> str:
        instance = self._instances[name]
        size = mib((instance.footprint() or {}).get(device, 0))
        if instance.state is State.STARTING:
            doing = "loading"
        elif instance.state is State.STOPPING:
            doing = "stopping"
        else:
            doing = f"{instance.in_flight} request(s) in flight"
        if instance.pinned:
            doing = f"pinned, {doing}"
        return f"'{name}' ({size} MiB, {doing})"
