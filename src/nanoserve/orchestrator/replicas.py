"""A model is a group of replicas: instances of one config, each with its own owner and handle.

The group routes (``router.py`` decides), aggregates what status endpoints show of the model,
and says how many replicas it wants (``scaling.py`` decides). Replica 0 is the model as it has
always been: loaded on the first request, unloaded after its keep-alive. Replicas 1.. exist only
while the group wants more than one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

from nanoserve.config import ModelConfig
from nanoserve.orchestrator.instance import ModelInstance, ModelView, ReplicaView, State
from nanoserve.orchestrator.router import Affinity, Candidate, PrefixTable, choose
from nanoserve.orchestrator.scaling import GroupLoad

# the model's state is its best replica's, in this order
STATE_ORDER = (State.READY, State.DRAINING, State.STARTING, State.STOPPING, State.FAILED, State.STOPPED)


class ReplicaGroup:
    def __init__(self, config: ModelConfig, new_instance: Callable[[int], ModelInstance]):
        self.config = config
        self._new_instance = new_instance
        self.replicas: list[ModelInstance] = []
        self.changed = asyncio.Event()  # a slot was freed or a replica changed state
        self.held = 0  # requests waiting in the gateway for a free slot on any replica
        self.replica(0)
        self.prefixes = PrefixTable()
        self.target: int | None = None  # set by hand (POST /models/scale); None: automatic
        self.pressure_since: float | None = None  # monotonic; requests queued beyond all slots
        self.last_scaled: float = 0.0  # monotonic
        self.lock = asyncio.Lock()  # one rescale at a time

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def first(self) -> ModelInstance:
        return self.replicas[0]

    def live(self) -> list[ModelInstance]:
        """Replicas that serve or are about to: starting or ready (not draining on their way out)."""
        return [r for r in self.replicas if r.state in (State.STARTING, State.READY)]

    def ready(self) -> list[ModelInstance]:
        return [
            r for r in self.replicas if r.state is State.READY and r.worker is not None and r.worker.alive
        ]

    def replica(self, index: int) -> ModelInstance:
        """Replica ``index``, created if it does not exist yet."""
        while len(self.replicas) <= index:
            instance = self._new_instance(len(self.replicas))
            instance.on_change = self.changed.set
            self.replicas.append(instance)
        return self.replicas[index]

    @property
    def spread(self) -> bool:
        """More than one replica may serve: requests beyond the ready replicas' slots wait in the
        gateway (where a new replica can take them) instead of in one worker's queue."""
        return self.config.replicas.max > 1 or len(self.replicas) > 1 or bool(self.target)

    # -- routing ----------------------------------------------------------------------------
    def choose(self, affinity: Affinity, *, free_slot: bool = False) -> ModelInstance | None:
        """The ready replica to serve a request (None: none is ready, or with ``free_slot`` none
        has a free slot and the request has no session to keep); remembers the prompt's blocks
        there for the next request with the same prefix."""
        ready = self.ready()
        if free_slot and not affinity.session:
            ready = [r for r in ready if r.in_flight + r.waiting < self.config.parallel]
        candidates = [Candidate(r.replica, r.in_flight + r.waiting) for r in ready]
        index = choose(candidates, affinity, self.prefixes.seen if len(ready) > 1 else None)
        if index is None:
            return None
        if affinity.prefix_blocks:
            self.prefixes.record(affinity.prefix_blocks, index)
        return self.replicas[index]

    def to_start(self) -> ModelInstance:
        """Where a request goes when no replica is ready: one already starting, else replica 0."""
        for instance in self.replicas:
            if instance.state is State.STARTING:
                return instance
        return self.first

    # -- aggregates -------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return sum(r.in_flight for r in self.replicas)

    @property
    def waiting(self) -> int:
        return self.held + sum(r.waiting for r in self.replicas)

    def slots(self) -> int:
        """Requests the ready replicas serve at once (at least one replica's worth)."""
        return self.config.parallel * max(1, len(self.ready()))

    def queued(self) -> int:
        return self.waiting + max(0, self.in_flight - self.slots())

    def load(self, now: float | None = None) -> GroupLoad:
        now = time.monotonic() if now is None else now
        live = self.live()
        idle = tuple(
            (r.replica, max(0.0, time.time() - r.last_used))
            for r in live
            if r.replica > 0 and r.state is State.READY and not r.in_flight and not r.waiting
        )
        return GroupLoad(
            live=len(live),
            queued=self.queued(),
            pressure_for=0.0 if self.pressure_since is None else now - self.pressure_since,
            since_scaled=now - self.last_scaled,
            idle_extras=idle,
            target=self.target,
        )

    def view(self) -> ModelView:
        """The model as one: the best replica's state, sums of requests and memory."""
        views = [r.view() for r in self.replicas]
        first = views[0]
        if len(views) == 1:
            return first
        best = min(views, key=lambda v: STATE_ORDER.index(State(v.state)))
        measured = [v.measured_bytes for v in views if v.measured_bytes is not None and v.state != "stopped"]
        loaded = [v.loaded_at for v in views if v.loaded_at is not None]
        expiries = [v.expires_at for v in views if v.expires_at is not None]
        return replace(
            best,
            loaded_at=min(loaded) if loaded else None,
            last_used=max((v.last_used or 0 for v in views), default=0) or None,
            expires_at=max(expiries) if expiries and len(expiries) == len(self.ready()) else None,
            in_flight=self.in_flight,
            queued=self.queued(),
            priority=first.priority,
            pinned=first.pinned,
            keep_alive=first.keep_alive,
            measured_bytes=sum(measured) if len(measured) > 1 else first.measured_bytes,
            pid=first.pid if first.pid is not None else best.pid,
        )

    def replica_views(self) -> list[ReplicaView]:
        return [r.replica_view() for r in self.replicas if r.replica == 0 or r.state is not State.STOPPED]
