"""Admission: may a request wait for its model, and what does a waiting load do next? Pure.

Two decisions, both over plain numbers so they are tested by tables:

* ``admit``: a request joins its model's queue unless the queue is full (429). A model's queue is
  the requests waiting in the gateway for it to be ready plus those its worker holds beyond its
  parallel slots (``queued`` in the status).
* ``next_step``: a load that needs memory held by busy models waits while those models keep
  serving (requests for a loaded model go first: no A-B-A-B thrashing); once it has waited
  ``max_wait`` and a blocking model has served for ``max_wait`` since it was loaded, that model is
  drained (takes no new requests, finishes what it has) so the waiting model cannot starve; after
  ``load_timeout`` the waiting requests get a 503 naming what holds the memory.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from nanoserve.orchestrator.planner import Plan

QUEUE_RETRY_AFTER = 2.0  # seconds a 429 asks the client to wait


@dataclass(frozen=True, slots=True)
class QueueState:
    waiting: int  # requests in the gateway waiting for the model to be ready
    in_flight: int  # requests sent to the worker
    parallel: int  # the worker's slots
    max_queue: int

    @property
    def queued(self) -> int:
        return self.waiting + max(0, self.in_flight - self.parallel)


def admit(queue: QueueState) -> bool:
    """True if one more request may join; False means 429 (queue full).

    A model takes ``parallel`` requests at once and ``max_queue`` more waiting, whether they wait
    for the model to load or for a slot.
    """
    return queue.waiting + queue.in_flight < queue.parallel + queue.max_queue


class Step(enum.StrEnum):
    LOAD = "load"  # evict what the plan says, then load
    WAIT = "wait"  # memory is held by busy models that still take requests
    DRAIN = "drain"  # stop the blocking models from taking requests, then wait for them
    NEVER = "never"  # the model can never fit: 507
    BUSY = "busy"  # waited long enough: 503 with Retry-After


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    drain: tuple[str, ...] = ()  # blocking models to drain now
    wake_in: float | None = None  # seconds until the next deadline (None: only on a change)


def next_step(
    plan: Plan,
    *,
    waited: float,
    ready_for: Mapping[str, float],
    max_wait: float,
    load_timeout: float,
) -> Decision:
    """What a load waiting for memory does now.

    ``waited``: seconds this load has waited; ``ready_for``: seconds each loaded (ready) model has
    been serving. A blocking model is drained only once the waiting load has waited ``max_wait``
    and the blocker itself has served for ``max_wait``: every model gets its turn, none starves.
    """
    if plan.never:
        return Decision(Step.NEVER)
    if plan.fits:
        return Decision(Step.LOAD)
    if waited >= load_timeout:
        return Decision(Step.BUSY)
    deadlines = [load_timeout - waited]
    drain: list[str] = []
    for blocker in plan.blocked_by:
        served = ready_for.get(blocker)
        if served is None:  # loading or stopping: its memory is on its way
            continue
        if waited >= max_wait and served >= max_wait:
            drain.append(blocker)
        else:
            deadlines.append(max(max_wait - waited, max_wait - served))
    return Decision(Step.DRAIN if drain else Step.WAIT, tuple(drain), min(deadlines))


def busy_retry_after(max_wait: float) -> int:
    return max(1, math.ceil(max_wait))
