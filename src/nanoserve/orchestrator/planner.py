"""Does a model fit, and what must go to make room? Pure decisions over a snapshot.

No I/O, no clock, no logging: the orchestrator takes a ``Snapshot`` (budgets per device and the
models that hold memory), asks ``plan_load`` and carries the plan out.

Rules:

* sizes are bytes per device (``"ram"``, ``"gpu0"``, ...); a model fits when, on every device,
  what the residents hold plus what it needs stays within the budget;
* candidates for eviction are taken in ``eviction_order``: lowest priority first, then least
  recently used; only a candidate that frees memory on a device that is still short is taken;
* a pinned model is never evicted; a model with requests in flight is evicted only when forced;
  a model that is still loading or already stopping cannot be evicted (its memory is on its way);
* a model that needs more than the budget minus what pinned models hold can never fit (507);
  one that would fit once busy models finish is blocked by them (the caller waits or answers 503).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Resident:
    """A model that holds (or is about to hold) memory."""

    id: str
    footprint: Mapping[str, int]  # device -> bytes
    priority: int = 0
    pinned: bool = False
    in_flight: int = 0
    last_used: float = 0.0
    evictable: bool = True  # False while loading or stopping


@dataclass(frozen=True, slots=True)
class Snapshot:
    budgets: Mapping[str, int]  # device -> bytes the models may use
    residents: tuple[Resident, ...] = ()

    def used(self, exclude: str | None = None) -> dict[str, int]:
        return _total(r.footprint for r in self.residents if r.id != exclude)


@dataclass(frozen=True)
class Plan:
    model: str
    need: Mapping[str, int]
    fits: bool  # it can be loaded now, after evicting ``evict``
    evict: tuple[str, ...] = ()  # in eviction order
    blocked_by: tuple[str, ...] = ()  # busy (or loading/stopping) models whose memory is needed too
    never: bool = False  # more than the budget (minus pinned models) on ``device``
    device: str | None = None  # the device that is short (when it does not fit)
    budgets: Mapping[str, int] = field(default_factory=dict)
    free_after: Mapping[str, int] = field(default_factory=dict)  # per device, after evictions and the load
    pinned: tuple[str, ...] = ()  # pinned residents holding memory on ``device``


def eviction_order(residents: Iterable[Resident]) -> list[Resident]:
    """Candidates in the order they go: lowest priority first, then least recently used."""
    return sorted((r for r in residents if not r.pinned), key=lambda r: (r.priority, r.last_used, r.id))


def _total(footprints: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for footprint in footprints:
        for device, size in footprint.items():
            total[device] = total.get(device, 0) + size
    return total


def _short(used: Mapping[str, int], need: Mapping[str, int], budgets: Mapping[str, int]) -> list[str]:
    return [d for d, n in need.items() if n > 0 and used.get(d, 0) + n > budgets.get(d, 0)]


def plan_load(snapshot: Snapshot, model: str, need: Mapping[str, int], *, force: bool = False) -> Plan:
    """How ``model`` (needing ``need`` bytes per device) can be loaded given ``snapshot``.

    ``force`` lets models with requests in flight be evicted (their requests fail).
    """
    budgets = snapshot.budgets
    others = [r for r in snapshot.residents if r.id != model]
    if len(others) != len(snapshot.residents):  # already resident: its memory is counted
        return Plan(model, need, True, budgets=budgets, free_after=_free(budgets, snapshot.used(), {}))

    pinned_used = _total(r.footprint for r in others if r.pinned)
    for device, size in need.items():
        if size > 0 and size > budgets.get(device, 0) - pinned_used.get(device, 0):
            pinned = tuple(r.id for r in others if r.pinned and r.footprint.get(device, 0) > 0)
            return Plan(
                model,
                need,
                False,
                never=True,
                device=device,
                budgets=budgets,
                free_after=_free(budgets, snapshot.used(), need),
                pinned=pinned,
            )

    used = snapshot.used()
    evict: list[str] = []
    blocked: list[Resident] = []
    for resident in eviction_order(others):
        short = _short(used, need, budgets)
        if not short:
            break
        if not any(resident.footprint.get(d, 0) > 0 for d in short):
            continue
        if resident.evictable and (force or resident.in_flight == 0):
            evict.append(resident.id)
            for device, size in resident.footprint.items():
                used[device] = used.get(device, 0) - size
        else:
            blocked.append(resident)
    short = _short(used, need, budgets)
    if not short:
        return Plan(model, need, True, tuple(evict), budgets=budgets, free_after=_free(budgets, used, need))

    # Not without the blocked ones: which of them must go too (in eviction order)? Freeing every
    # non-pinned model is enough, since the need is within the budget minus the pinned models.
    waiting_for: list[str] = []
    for resident in blocked:
        if not _short(used, need, budgets):
            break
        waiting_for.append(resident.id)
        for device, size in resident.footprint.items():
            used[device] = used.get(device, 0) - size
    return Plan(
        model,
        need,
        False,
        tuple(evict),
        tuple(waiting_for),
        device=short[0],
        budgets=budgets,
        free_after=_free(budgets, used, need),
    )


def _free(budgets: Mapping[str, int], used: Mapping[str, int], need: Mapping[str, int]) -> dict[str, int]:
    return {d: budgets[d] - used.get(d, 0) - need.get(d, 0) for d in budgets}
