"""Admission: may a request wait for its model, and what does a waiting load do next? Pure.

Two decisions, both over plain numbers so they are tested by tables:

* ``admit``: a request joins its model's queue unless the queue is full (429). A model's queue is
  the requests waiting in the gateway for it to be ready plus those its worker holds beyond its
  parallel slots (``queued`` in the status).
* ``next_step``: a load that needs memory held by busy models waits while those models keep
  serving (requests for a loaded model go first: no A-B-A-B thrashing); after ``max_wait`` they
  are drained (take no new requests, finish what they have) so the waiting model cannot starve;
  after ``load_timeout`` the waiting requests get a 503 naming what holds the memory.
"""

from __future__ import annotations

import enum
import math
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


def next_step(plan: Plan, *, waited: float, max_wait: float, load_timeout: float) -> Step:
    if plan.never:
        return Step.NEVER
    if plan.fits:
        return Step.LOAD
    if waited >= load_timeout:
        return Step.BUSY
    if waited >= max_wait:
        return Step.DRAIN
    return Step.WAIT


def wake_after(*, waited: float, max_wait: float, load_timeout: float) -> float:
    """Seconds until the next deadline of a waiting load (it also wakes when memory changes)."""
    deadlines = [d - waited for d in (max_wait, load_timeout) if d > waited]
    return min(deadlines) if deadlines else 0.0


def busy_retry_after(max_wait: float) -> int:
    return max(1, math.ceil(max_wait))
