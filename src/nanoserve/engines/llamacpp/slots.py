"""Slot choice for a new request: a pure decision over what each slot's KV cache holds.

Slot ``i`` owns llama.cpp sequence ``i``. A free slot keeps the tokens of its last request in the
KV cache, so a new request whose prompt starts the same way skips evaluating that prefix. The
decision prefers, in order: the free slot with the longest reusable prefix; else copying a longer
prefix from any other slot (busy ones included: only positions already in their KV are copied)
when that saves at least ``copy_min`` tokens.

Prefixes less than ``copy_min`` tokens apart count as equal, and among equals the slot that keeps
the busy slots in the fewest runs of consecutive numbers wins, then the least recently used one
(so empty slots are taken before useful caches are overwritten). Runs matter because llama.cpp,
with one KV stream per sequence, computes a batch in ubatches of consecutive sequence ids: busy
slots 0-7 decode in one graph, slots {0, 1, 2, 4, 5} in two, each nearly as slow as one whole
step (benchmarks/README.md, "The batch in slot order").

At most ``len(prompt) - 1`` tokens are reused: the last prompt token is always evaluated, since
its logits give the first generated token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlotView:
    """What the decision needs to know about one slot."""

    cached: Sequence[int]  # tokens whose KV is in this slot's sequence, position 0 onwards
    free: bool
    last_used: int  # a monotonic counter; lower = used longer ago


@dataclass(frozen=True, slots=True)
class SlotChoice:
    slot: int
    reuse: int  # prompt tokens whose KV is reused (positions [0, reuse))
    copy_from: int | None = None  # copy positions [0, reuse) from this slot's sequence first


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def busy_runs(busy: AbstractSet[int]) -> int:
    """How many runs of consecutive slot numbers ``busy`` makes: the ubatches of one decode step."""
    return sum(1 for i in busy if i - 1 not in busy)


def choose_slot(
    prompt: Sequence[int],
    slots: Sequence[SlotView],
    *,
    prefix_cache: bool = True,
    copy_min: int = 32,
) -> SlotChoice | None:
    """Where to run ``prompt`` and how much of it is already cached; None when no slot is free."""
    free = [i for i, s in enumerate(slots) if s.free]
    if not free:
        return None
    busy = frozenset(i for i, s in enumerate(slots) if not s.free)

    def best(value: Callable[[int], int]) -> int:
        """The free slot of highest ``value`` (within copy_min counts as equal), then fewest runs, then LRU."""
        top = max(value(i) for i in free)
        near = [i for i in free if top - value(i) < copy_min]
        return min(near, key=lambda i: (busy_runs(busy | {i}), -value(i), slots[i].last_used))

    if not prefix_cache:
        return SlotChoice(slot=best(lambda i: 0), reuse=0)

    limit = max(len(prompt) - 1, 0)
    usable = [min(common_prefix(prompt, s.cached), limit) for s in slots]
    own = best(lambda i: usable[i])
    donor = max(range(len(slots)), key=lambda i: usable[i])
    if donor != own and usable[donor] - usable[own] >= copy_min:
        # The target is the free slot whose own cache is worth least.
        target = best(lambda i: -usable[i])
        return SlotChoice(slot=target, reuse=usable[donor], copy_from=donor)
    return SlotChoice(slot=own, reuse=usable[own])
