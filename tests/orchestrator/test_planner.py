"""The memory planner: fit and eviction decisions over snapshots, as tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from nanoserve.orchestrator.planner import MIB, Resident, Snapshot, eviction_order, plan_load


def r(
    id: str,
    mib: int,
    *,
    gpu: int = 0,
    priority: int = 0,
    pinned: bool = False,
    in_flight: int = 0,
    last_used: float = 0.0,
    evictable: bool = True,
) -> Resident:
    footprint = {"ram": mib * MIB}
    if gpu:
        footprint["gpu0"] = gpu * MIB
    return Resident(id, footprint, priority, pinned, in_flight, last_used, evictable)


@dataclass
class Case:
    name: str
    residents: list[Resident]
    need: int  # MiB of RAM
    budget: int = 1000
    gpu_need: int = 0
    gpu_budget: int | None = None
    force: bool = False
    # expected
    fits: bool = True
    evict: list[str] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)
    never: bool = False
    device: str | None = None
    free_after_ram: int | None = None


CASES = [
    Case("empty machine", [], need=400, fits=True, free_after_ram=600),
    Case("fits beside the others", [r("a", 300), r("b", 200)], need=400, free_after_ram=100),
    Case("exactly the budget", [r("a", 600)], need=400, free_after_ram=0),
    Case(
        "evicts the lowest priority first",
        [r("hi", 400, priority=5, last_used=1), r("lo", 400, priority=1, last_used=9)],
        need=400,
        evict=["lo"],
        free_after_ram=200,
    ),
    Case(
        "same priority: least recently used first",
        [r("new", 400, last_used=20), r("old", 400, last_used=10)],
        need=400,
        evict=["old"],
    ),
    Case(
        "evicts as many as needed, in order",
        [r("a", 300, last_used=1), r("b", 300, last_used=2), r("c", 300, last_used=3)],
        need=700,
        evict=["a", "b"],
        free_after_ram=0,
    ),
    Case(
        "skips a model that frees nothing on the short device",
        [r("gpu-only", 0, gpu=500, last_used=1), r("cpu", 500, last_used=2)],
        need=700,
        gpu_budget=1000,
        evict=["cpu"],
    ),
    Case(
        "never a pinned model",
        [r("pinned", 500, pinned=True, last_used=0), r("b", 400, last_used=5)],
        need=500,
        evict=["b"],
    ),
    Case(
        "pinned memory makes it never fit",
        [r("pinned", 700, pinned=True)],
        need=400,
        fits=False,
        never=True,
        device="ram",
    ),
    Case("more than the budget never fits", [], need=1200, fits=False, never=True, device="ram"),
    Case("busy model blocks", [r("busy", 800, in_flight=2)], need=400, fits=False, blocked_by=["busy"]),
    Case(
        "busy model is passed over for an idle one",
        [r("busy", 500, in_flight=1, last_used=1), r("idle", 500, priority=3, last_used=2)],
        need=500,
        evict=["idle"],
    ),
    Case(
        "idle ones go, a busy one is still needed",
        [r("idle", 200, last_used=1), r("busy", 600, in_flight=1, last_used=2)],
        need=500,
        fits=False,
        evict=["idle"],
        blocked_by=["busy"],
    ),
    Case("force evicts a busy model", [r("busy", 800, in_flight=2)], need=400, force=True, evict=["busy"]),
    Case(
        "a loading model cannot be evicted",
        [r("loading", 800, evictable=False)],
        need=400,
        fits=False,
        blocked_by=["loading"],
    ),
    Case(
        "force does not evict a loading model",
        [r("loading", 800, evictable=False)],
        need=400,
        force=True,
        fits=False,
        blocked_by=["loading"],
    ),
    Case(
        "gpu: short on VRAM evicts the VRAM holder",
        [r("g", 100, gpu=700, last_used=1), r("c", 100, last_used=0)],
        need=100,
        gpu_need=500,
        gpu_budget=1000,
        evict=["g"],
    ),
    Case("gpu: no GPU never fits", [], need=100, gpu_need=500, fits=False, never=True, device="gpu0"),
    Case("already resident", [r("self", 900)], need=900, fits=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan_load(case: Case) -> None:
    budgets = {"ram": case.budget * MIB}
    if case.gpu_budget is not None:
        budgets["gpu0"] = case.gpu_budget * MIB
    need = {"ram": case.need * MIB}
    if case.gpu_need:
        need["gpu0"] = case.gpu_need * MIB
    model = "self"
    plan = plan_load(Snapshot(budgets, tuple(case.residents)), model, need, force=case.force)
    assert plan.fits is case.fits
    assert list(plan.evict) == case.evict
    assert list(plan.blocked_by) == case.blocked_by
    assert plan.never is case.never
    if case.device is not None:
        assert plan.device == case.device
    if case.free_after_ram is not None:
        assert plan.free_after["ram"] == case.free_after_ram * MIB


def test_eviction_order_priority_then_lru_never_pinned() -> None:
    residents = [
        r("p", 1, pinned=True),
        r("hi-old", 1, priority=2, last_used=1),
        r("lo-new", 1, priority=0, last_used=9),
        r("lo-old", 1, priority=0, last_used=3),
        r("mid", 1, priority=1, last_used=0),
    ]
    assert [x.id for x in eviction_order(residents)] == ["lo-old", "lo-new", "mid", "hi-old"]


def test_pinned_never_fit_names_the_pinned_models() -> None:
    plan = plan_load(
        Snapshot({"ram": 1000 * MIB}, (r("keep", 700, pinned=True), r("x", 100))), "m", {"ram": 400 * MIB}
    )
    assert plan.never and plan.pinned == ("keep",)


def test_plan_is_pure_and_leaves_the_snapshot_alone() -> None:
    snapshot = Snapshot({"ram": 1000 * MIB}, (r("a", 600, last_used=1), r("b", 300, last_used=2)))
    first = plan_load(snapshot, "m", {"ram": 500 * MIB})
    second = plan_load(snapshot, "m", {"ram": 500 * MIB})
    assert first == second
    assert snapshot.used() == {"ram": 900 * MIB}
