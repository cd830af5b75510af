"""Loads, evictions, waits and keep-alive with mock workers of declared sizes (real processes).

The mock engine's ``memory_mib`` really allocates that much in its worker, so the planner works
with measured footprints after the first load.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from harness import RUNTIME_MIB, chat, eventually, mock, request, running

from nanoserve.errors import Conflict, InsufficientMemory, QueueFull, Unavailable
from nanoserve.orchestrator.instance import State
from nanoserve.orchestrator.memory import alive, ram_footprint
from nanoserve.orchestrator.planner import MIB


async def test_fifty_concurrent_first_requests_cause_one_load(tmp_path: Path) -> None:
    async with running(tmp_path, [mock("m", options={"load_seconds": 0.5})]) as (orchestrator, events):
        pids = await asyncio.gather(*(request(orchestrator, "m") for _ in range(50)))
        assert len(set(pids)) == 1
        assert len(events.of("loaded", "m")) == 1
        assert len(events.of("starting", "m")) == 1
        assert orchestrator.instance("m").stats.loads == 1


async def test_evicts_least_recently_used_then_lower_priority(tmp_path: Path) -> None:
    models = [mock("a", 100), mock("b", 100), mock("c", 100), mock("vip", 100, priority=5)]
    # room for two: each is ~160 MiB with its runtime
    async with running(tmp_path, models, budget_mib=360) as (orchestrator, events):
        await request(orchestrator, "a")
        await request(orchestrator, "b")
        await request(orchestrator, "a")  # b is now the least recently used
        await request(orchestrator, "c")
        assert events.unloads() == [("b", "memory")]
        await request(orchestrator, "vip")  # evicts a (used before c)
        assert events.unloads()[-1] == ("a", "memory")
        await request(orchestrator, "a")  # c goes, not vip: lower priority first
        assert events.unloads()[-1] == ("c", "memory")
        assert orchestrator.memory_stats.evictions == 3
        loaded = {i.id for i in orchestrator.instances.values() if i.state is State.READY}
        assert loaded == {"a", "vip"}


async def test_measured_footprint_replaces_the_estimate(tmp_path: Path) -> None:
    async with running(tmp_path, [mock("m", 200)]) as (orchestrator, _):
        instance = await orchestrator.load("m")
        assert instance.estimated == {"ram": (RUNTIME_MIB + 200) * MIB}
        assert instance.measured is not None and instance.measured["ram"] >= 200 * MIB
        assert instance.footprint() == instance.measured
        view = instance.view()
        assert (
            view.estimated_bytes == (RUNTIME_MIB + 200) * MIB
            and view.measured_bytes == instance.measured["ram"]
        )
        worker = instance.worker
        assert worker is not None
        live = ram_footprint(worker.pid)
        assert live is not None and abs(live - instance.measured["ram"]) < 50 * MIB


async def test_never_fits_is_507_with_numbers(tmp_path: Path) -> None:
    async with running(tmp_path, [mock("huge", 1000)], budget_mib=500) as (orchestrator, _):
        with pytest.raises(InsufficientMemory) as err:
            await orchestrator.acquire("huge")
        assert "'huge' needs 1040 MiB of ram but the memory budget is 500 MiB" in err.value.message
        assert orchestrator.instance("huge").state is State.STOPPED
        assert orchestrator.memory_stats.rejections["never_fits"] == 1


async def test_pinned_model_is_never_evicted(tmp_path: Path) -> None:
    models = [mock("keep", 100, pinned=True), mock("other", 100), mock("third", 100)]
    async with running(tmp_path, models, budget_mib=400) as (orchestrator, events):
        await request(orchestrator, "keep")
        await request(orchestrator, "other")
        await request(orchestrator, "third")  # evicts other, the only candidate
        assert events.unloads() == [("other", "memory")]
        plan = await orchestrator.plan("other")
        assert plan.fits and plan.evict == ("third",)


async def test_pinned_memory_makes_a_model_never_fit(tmp_path: Path) -> None:
    models = [mock("keep", 200, pinned=True), mock("big", 200)]
    async with running(tmp_path, models, budget_mib=400) as (orchestrator, _):
        await request(orchestrator, "keep")
        with pytest.raises(InsufficientMemory, match="held by pinned model\\(s\\) 'keep'"):
            await orchestrator.acquire("big")


async def test_busy_model_holding_the_memory_gives_503_with_retry_after(tmp_path: Path) -> None:
    models = [mock("a", 100), mock("b", 100)]
    async with running(tmp_path, models, budget_mib=200, load_timeout=0) as (orchestrator, _):
        lease = await orchestrator.acquire("a")
        try:
            with pytest.raises(Unavailable) as err:
                await orchestrator.acquire("b")
            assert err.value.retry_after is not None and err.value.retry_after >= 1
            message = err.value.message
            assert "no room for model 'b' right now" in message
            assert "held by 'a' (" in message and "1 request(s) in flight" in message
        finally:
            await chat(lease)
        await request(orchestrator, "b")  # a is idle now: evicted
        assert orchestrator.memory_stats.rejections["no_room"] == 1


async def test_waiting_model_is_served_after_max_wait_without_thrashing(tmp_path: Path) -> None:
    """A loaded, busy model keeps taking requests while another waits, until max_wait; then it
    drains and the waiting model loads. Every request succeeds; nothing is cut off."""
    models = [mock("a", 100), mock("b", 100)]
    async with running(tmp_path, models, budget_mib=200, max_wait=0.5, load_timeout=60) as (
        orchestrator,
        events,
    ):
        first = await orchestrator.acquire("a")
        waiting_b = asyncio.create_task(request(orchestrator, "b"))
        assert await eventually(lambda: orchestrator.instance("b").waiting == 1)
        # a is loaded: its new requests are served at once while b waits (no swap yet)
        second = await orchestrator.acquire("a")
        assert orchestrator.instance("a").state is State.READY
        # past max_wait a drains: new requests for a wait, those in flight finish
        assert await eventually(lambda: orchestrator.instance("a").state is State.DRAINING)
        late_a = asyncio.create_task(request(orchestrator, "a"))
        await asyncio.sleep(0.1)
        assert not waiting_b.done() and not late_a.done()
        await chat(first)
        await chat(second)
        await waiting_b
        await late_a  # a comes back once b is idle
        assert [m for m, _ in events.unloads()] == ["a", "b"]
        assert orchestrator.memory_stats.drains == 1


async def test_queue_limit_gives_429(tmp_path: Path) -> None:
    async with running(tmp_path, [mock("m", parallel=1, max_queue=1)]) as (orchestrator, _):
        leases = [await orchestrator.acquire("m"), await orchestrator.acquire("m")]
        with pytest.raises(QueueFull) as err:
            await orchestrator.acquire("m")
        assert err.value.retry_after and "model 'm' is at its limit" in err.value.message
        assert orchestrator.instance("m").view().queued == 1
        for lease in leases:
            await chat(lease)
        await request(orchestrator, "m")


async def test_keep_alive_zero_unloads_after_the_request_and_releases_memory(tmp_path: Path) -> None:
    async with running(tmp_path, [mock("m", 50)]) as (orchestrator, events):
        lease = await orchestrator.acquire("m", keep_alive=0)
        pid = lease.worker.pid
        await asyncio.sleep(0.2)
        assert orchestrator.instance("m").state is State.READY  # never while in flight
        await chat(lease)
        assert await eventually(lambda: orchestrator.instance("m").state is State.STOPPED)
        assert events.unloads() == [("m", "idle")]
        assert alive([pid]) == []


async def test_keep_alive_per_request_and_forever(tmp_path: Path) -> None:
    async with running(tmp_path, [mock("m", keep_alive=300)]) as (orchestrator, _):
        await request(orchestrator, "m", keep_alive=-1)
        view = orchestrator.instance("m").view()
        assert view.keep_alive == -1 and view.expires_at is None
        await request(orchestrator, "m")  # the model's default again
        view = orchestrator.instance("m").view()
        assert view.keep_alive == 300 and view.expires_at == pytest.approx(view.last_used + 300)


async def test_keep_alive_expiry(tmp_path: Path) -> None:
    async with running(tmp_path, [mock("m", keep_alive=0.3)]) as (orchestrator, events):
        await request(orchestrator, "m")
        assert await eventually(lambda: orchestrator.instance("m").state is State.STOPPED)
        assert events.unloads() == [("m", "idle")]


async def test_priority_control_changes_eviction(tmp_path: Path) -> None:
    models = [mock("a", 100), mock("b", 100), mock("c", 100)]
    async with running(tmp_path, models, budget_mib=360) as (orchestrator, events):
        await request(orchestrator, "a", priority=3)
        await request(orchestrator, "b")
        await request(orchestrator, "c")  # a is least recently used but has a higher priority
        assert events.unloads() == [("b", "memory")]
        assert orchestrator.instance("a").view().priority == 3


async def test_unload_with_requests_in_flight(tmp_path: Path) -> None:
    async with running(tmp_path, [mock("m")]) as (orchestrator, events):
        lease = await orchestrator.acquire("m")
        with pytest.raises(Conflict, match="1 request\\(s\\) in flight"):
            await orchestrator.unload("m")
        await orchestrator.unload("m", force=True)
        assert orchestrator.instance("m").state is State.STOPPED
        assert events.of("unloaded", "m") == [{"reason": "manual", "forced": True}]
        assert "unloaded (manual, forced)" in (orchestrator.instance("m").error or "")
        lease.release()


async def test_mock_workers_never_exceed_the_budget(tmp_path: Path) -> None:
    """Alternating requests over three models with room for two: every request succeeds and
    the workers' real memory stays within the budget."""
    budget = 360
    models = [mock(name, 100) for name in ("a", "b", "c")]
    async with running(tmp_path, models, budget_mib=budget) as (orchestrator, _):
        peak = 0
        for name in ["a", "b", "c", "a", "c", "b", "a", "b"]:
            await request(orchestrator, name)
            pids = [i.worker.pid for i in orchestrator.instances.values() if i.worker is not None]
            peak = max(peak, sum(ram_footprint(pid) or 0 for pid in pids))
        assert peak <= budget * MIB
        assert orchestrator.memory_stats.evictions >= 4
