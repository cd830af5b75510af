"""MicroBatcher's batch forming: small jobs are not held behind bulk ones, bulk ones not starved.

Pure asyncio: a fake ``run`` records each batch's job names and sleeps as a forward pass would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from nanoserve.engines.batching import Job, MicroBatcher


@dataclass(eq=False, kw_only=True)
class _Named(Job[str]):
    name: str


@dataclass
class _Engine:
    """A batcher over a fake ``run`` that records batches and takes ``pass_s`` per batch."""

    pass_s: float = 0.05
    max_tokens: int = 100
    max_wait_s: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    batches: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.batcher: MicroBatcher[_Named] = MicroBatcher(
            self._run, max_tokens=self.max_tokens, max_wait_s=self.max_wait_s, name="test", **self.options
        )
        self.tasks: dict[str, asyncio.Task[Any]] = {}

    async def _run(self, batch: list[_Named]) -> None:
        self.batches.append([job.name for job in batch])
        await asyncio.sleep(self.pass_s)
        for job in batch:
            job.future.set_result(job.name)

    def submit(self, name: str, tokens: int) -> asyncio.Task[Any]:
        job = _Named(size=1, tokens=tokens, future=asyncio.get_running_loop().create_future(), name=name)
        self.tasks[name] = asyncio.create_task(self.batcher.submit(job))
        return self.tasks[name]

    async def until_batches(self, count: int) -> None:
        """Wait until ``count`` batches have started (their ``run`` is sleeping)."""
        for _ in range(1000):
            if len(self.batches) >= count:
                return
            await asyncio.sleep(0.001)
        raise AssertionError(f"{len(self.batches)} batches, expected {count}: {self.batches}")


async def test_a_small_job_runs_in_the_next_pass_not_behind_the_bulk_ones() -> None:
    engine = _Engine()
    engine.batcher.start()
    try:
        engine.submit("bulk1", 98)
        await engine.until_batches(1)  # bulk1 runs
        engine.submit("bulk2", 98)
        engine.submit("bulk3", 98)
        engine.submit("query1", 3)
        engine.submit("query2", 2)
        results = await asyncio.gather(*engine.tasks.values())
    finally:
        engine.batcher.stop()
    # the queries (smallest first, together) before the bulk jobs that arrived before them
    assert engine.batches == [["bulk1"], ["query2", "query1"], ["bulk2"], ["bulk3"]]
    assert results == ["bulk1", "bulk2", "bulk3", "query1", "query2"]  # every job got its result


async def test_bulk_jobs_all_complete_in_arrival_order_among_equals() -> None:
    engine = _Engine(pass_s=0.01)
    engine.batcher.start()
    try:
        engine.submit("bulk0", 100)
        await engine.until_batches(1)
        for i in range(1, 6):
            engine.submit(f"bulk{i}", 100)
        results = await asyncio.gather(*engine.tasks.values())
    finally:
        engine.batcher.stop()
    assert engine.batches == [[f"bulk{i}"] for i in range(6)]
    assert results == [f"bulk{i}" for i in range(6)]


async def test_a_job_that_would_overshoot_the_budget_waits_for_the_next_batch() -> None:
    engine = _Engine()
    engine.batcher.start()
    try:
        engine.submit("running", 10)
        await engine.until_batches(1)
        engine.submit("a60", 60)
        engine.submit("b50", 50)
        engine.submit("c30", 30)
        engine.submit("d25", 25)
        engine.submit("huge", 150)  # over the budget: a batch's first job runs whatever its size
        await asyncio.gather(*engine.tasks.values())
    finally:
        engine.batcher.stop()
    # 25 + 30 + 50 = 105 > 100: b50 does not join; 50 + 60 > 100 either
    assert engine.batches == [["running"], ["d25", "c30"], ["b50"], ["a60"], ["huge"]]


async def test_a_large_job_does_not_join_small_ones_even_within_the_budget() -> None:
    engine = _Engine()
    engine.batcher.start()
    try:
        engine.submit("running", 10)
        await engine.until_batches(1)
        engine.submit("bulk60", 60)  # 60 + 19 fits in 100, but the queries would wait for it
        engine.submit("q8", 8)
        engine.submit("q5", 5)
        engine.submit("q6", 6)
        await asyncio.gather(*engine.tasks.values())
    finally:
        engine.batcher.stop()
    # similar sizes share a batch (each at most twice what it holds); 60 > 2 x 19 runs next
    assert engine.batches == [["running"], ["q5", "q6", "q8"], ["bulk60"]]


async def test_short_jobs_of_any_sizes_share_a_batch() -> None:
    engine = _Engine()
    engine.batcher.start()
    try:
        engine.submit("running", 10)
        await engine.until_batches(1)
        engine.submit("t1", 1)
        engine.submit("t6", 6)  # more than twice 1, but at most 100 // 16: short anyway
        engine.submit("t9", 9)
        await asyncio.gather(*engine.tasks.values())
    finally:
        engine.batcher.stop()
    assert engine.batches == [["running"], ["t1", "t6", "t9"]]


async def test_a_batch_waits_max_wait_to_fill_unless_the_budget_is_full() -> None:
    engine = _Engine(pass_s=0.0, max_wait_s=0.2)
    engine.batcher.start()
    try:
        start = time.perf_counter()
        engine.submit("a", 10)
        await asyncio.sleep(0.02)
        engine.submit("b", 10)
        await asyncio.gather(*engine.tasks.values())
        filled = time.perf_counter() - start
        engine.submit("c", 60)
        engine.submit("d", 40)  # 100 tokens waiting: no reason to wait
        start = time.perf_counter()
        await asyncio.gather(engine.tasks["c"], engine.tasks["d"])
        full = time.perf_counter() - start
    finally:
        engine.batcher.stop()
    assert engine.batches == [["a", "b"], ["d", "c"]]
    assert filled >= 0.19
    assert full < 0.1


async def test_a_cancelled_job_is_skipped_and_takes_no_budget() -> None:
    engine = _Engine()
    engine.batcher.start()
    try:
        engine.submit("running", 10)
        await engine.until_batches(1)
        left = engine.submit("left", 60)
        engine.submit("a", 50)
        engine.submit("b", 50)
        await asyncio.sleep(0.001)  # all three wait
        left.cancel()  # its client went away
        await asyncio.gather(engine.tasks["running"], engine.tasks["a"], engine.tasks["b"])
    finally:
        engine.batcher.stop()
    assert engine.batches == [["running"], ["a", "b"]]


async def test_patience_lets_a_large_job_go_first_under_a_stream_of_small_ones() -> None:
    # a small job always waits: smallest first alone would hold the large one until the stream ends
    engine = _Engine(pass_s=0.01, options={"patience_s": 0.2})
    engine.batcher.start()
    stream_s = 1.0
    waited = None  # until the large job's result
    try:
        start = time.perf_counter()
        engine.submit("small0", 20)
        await engine.until_batches(1)
        engine.submit("large", 90)  # with any small job: over 100 tokens
        i = 0
        while time.perf_counter() - start < stream_s:
            i += 1
            engine.submit(f"small{i}", 20)
            await asyncio.sleep(0.003)
            if waited is None and engine.tasks["large"].done():
                waited = time.perf_counter() - start
        await asyncio.gather(*engine.tasks.values())
    finally:
        engine.batcher.stop()
    assert waited is not None, "the large job starved until the stream of small ones ended"
    assert 0.2 <= waited < 0.6
    assert ["large"] in engine.batches
    # the small ones kept running before and after it
    at = engine.batches.index(["large"])
    assert at > 3 and len(engine.batches) > at + 3


async def test_overdue_bulk_jobs_let_a_small_one_through_every_other_batch() -> None:
    # a queue of bulk jobs deeper than the patience: each overdue one runs, then the smallest
    engine = _Engine(pass_s=0.03, options={"patience_s": 0.05})
    engine.batcher.start()
    try:
        for i in range(6):
            engine.submit(f"bulk{i}", 100)
        await engine.until_batches(3)  # bulk2 runs; the others waited > 0.05 s
        engine.submit("query", 1)
        await asyncio.gather(*engine.tasks.values())
    finally:
        engine.batcher.stop()
    at = engine.batches.index(["query"])
    assert at <= 4, engine.batches  # after at most the running pass and one overdue bulk job
    assert sorted(name for batch in engine.batches for name in batch) == sorted(engine.tasks)
