"""How many replicas a model wants: a pure decision over its load, tested by tables.

* Set by hand (``POST /models/scale``): exactly that many.
* Otherwise between ``replicas.min`` and ``replicas.max``:
  - one more when requests have been queued beyond every replica's slots for
    ``scale_up_queue_wait_ms`` (the oldest has waited about that long) and the last scale event
    was at least ``scale_up_after_s`` ago (a new replica takes the queue before another is added);
  - one fewer when an extra replica (not the first) has been idle ``scale_down_idle_s``; the
    first one follows the model's keep-alive as a single instance always has.

Whether memory allows a new replica is the memory planner's, asked by the supervisor before it
starts one (it never evicts a model with requests in flight for it).
"""

from __future__ import annotations

from dataclasses import dataclass

from nanoserve.config import ReplicaSettings


@dataclass(frozen=True, slots=True)
class GroupLoad:
    live: int  # replicas starting, ready or draining
    queued: int  # requests waiting beyond the ready replicas' slots
    pressure_for: float  # seconds requests have been queued without a break
    since_scaled: float  # seconds since the last scale event
    idle_extras: tuple[tuple[int, float], ...] = ()  # (replica index > 0, seconds idle)
    target: int | None = None


def desired_replicas(load: GroupLoad, settings: ReplicaSettings) -> int:
    if load.target is not None:
        return load.target
    want = max(load.live, settings.min)
    if (
        load.queued > 0
        and load.pressure_for * 1000 >= settings.scale_up_queue_wait_ms
        and load.since_scaled >= settings.scale_up_after_s
    ):
        want = max(want, load.live + 1)
    elif load.live > max(settings.min, 1) and any(
        idle >= settings.scale_down_idle_s for _, idle in load.idle_extras
    ):
        want = load.live - 1
    return max(settings.min, min(want, settings.max))


def replica_to_remove(load: GroupLoad) -> int | None:
    """The extra replica to stop first: the one idle longest (a busy one only by hand)."""
    if not load.idle_extras:
        return None
    return max(load.idle_extras, key=lambda item: (item[1], item[0]))[0]
