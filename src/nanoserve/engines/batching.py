"""Micro-batching for the engines that run one forward pass over many requests (embeddings, rerank).

Requests wait on the event loop as jobs; one task forms batches and runs them one at a time:

* **Filling.** A batch is formed once the jobs waiting hold ``max_tokens``, or ``max_wait_s``
  after the oldest of them *arrived* (jobs that queued behind a long pass are not held back
  further).
* **Smallest first.** The batch takes the waiting jobs by tokens, oldest first among equals. A job
  joins a batch that holds something only if it fits in what is left of ``max_tokens`` (no
  overshoot; a batch's first job always runs, whatever its size: one request may hold up to
  ``max_tokens``) and is at most twice what the batch holds, or small anyway (at most
  ``max_tokens // 16``): every job of a batch waits for all of it, so small jobs do not take a
  large one along (it runs right after them, late by their short batch), while jobs of similar
  sizes, and short requests of any sizes, still share one. A one-text query that arrives while bulk
  requests wait (RAG ingestion sends requests of up to the engine's budget, several at once) runs
  in the next batch, alone or with other small ones: it waits for the batch already running, not
  for every bulk request ahead of it.
* **Patience.** A job waiting longer than ``patience_s`` (``PATIENCE_S``, 10 s) starts every other
  batch, oldest first, whatever its size: a steady stream of small jobs cannot starve a large one,
  and a deep queue of overdue large jobs still lets small ones through every second batch.

``run`` gets each batch without the jobs whose client already left (they take no budget), and
``deliver``/``fail`` hand each job its share of the results.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

R = TypeVar("R")

# Longer than bulk requests wait for each other, so smallest first decides: RAG ingestion keeps 3
# requests of up to max_batch_tokens in flight and one of 8064 tokens is ~1.1 s of passes on 2
# vCPUs (all-minilm, onnx-int8), so the last waits ~2 s; 10 s covers ~9 such requests queued, or
# passes several times slower on a busy machine. Short next to the client's timeout (300 s): a
# bulk request starved by small ones is late by seconds. Where bulk requests are overdue anyway,
# the turns keep a small job's wait at the batch running plus one bulk batch.
PATIENCE_S = 10.0


@dataclass(eq=False)
class Job(Generic[R]):
    """One request: ``size`` rows of the batch's results, ``tokens`` of its token budget."""

    size: int
    tokens: int
    future: asyncio.Future[R]
    enqueued: float = field(default_factory=time.perf_counter)


J = TypeVar("J", bound=Job[Any])


class MicroBatcher(Generic[J]):
    def __init__(
        self,
        run: Callable[[list[J]], Awaitable[None]],
        *,
        max_tokens: int,
        max_wait_s: float,
        name: str,
        patience_s: float = PATIENCE_S,
    ):
        self._run = run
        self._max_tokens = max_tokens
        self._max_wait_s = max_wait_s
        self._patience_s = patience_s
        self._name = name
        self._waiting: list[J] = []  # in arrival order
        self._arrived = asyncio.Event()
        self._overdue_first = False  # the last batch started with an overdue job
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self._name)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def started(self) -> bool:
        return self._task is not None

    async def submit(self, job: J) -> Any:
        self._waiting.append(job)
        self._arrived.set()
        return await job.future

    async def _loop(self) -> None:
        while True:
            await self._fill()
            if batch := self._take():
                await self._run(batch)

    async def _fill(self) -> None:
        """Return once jobs wait and hold ``max_tokens`` or the oldest arrived ``max_wait_s`` ago."""
        while True:
            self._waiting = [job for job in self._waiting if not job.future.done()]  # clients left
            timeout = None
            if self._waiting:
                if sum(job.tokens for job in self._waiting) >= self._max_tokens:
                    return
                timeout = self._waiting[0].enqueued + self._max_wait_s - time.perf_counter()
                if timeout <= 0:
                    return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return

    def _take(self) -> list[J]:
        """The next batch, out of the waiting jobs (see the module's docstring)."""
        waiting = [job for job in self._waiting if not job.future.done()]
        oldest = min(waiting, key=lambda job: job.enqueued, default=None)
        overdue = oldest is not None and time.perf_counter() - oldest.enqueued > self._patience_s
        lead = oldest if overdue and not self._overdue_first else None  # turns: every other batch
        self._overdue_first = lead is not None
        order = sorted(waiting, key=lambda job: (job is not lead, job.tokens, job.enqueued))
        batch: list[J] = []
        held = 0  # tokens in the batch
        small = self._max_tokens // 16  # joins whatever the batch holds
        for job in order:
            if not batch or job.tokens <= min(self._max_tokens - held, max(2 * held, small)):
                batch.append(job)
                held += job.tokens
        taken = set(batch)
        self._waiting = [job for job in waiting if job not in taken]
        return batch


def deliver(batch: Sequence[Job[R]], rows: Sequence[Any], result: Callable[[Job[R], list[Any]], R]) -> None:
    """Each job gets ``result(job, its rows)``: the batch's rows in job order."""
    offset = 0
    for job in batch:
        if not job.future.done():
            job.future.set_result(result(job, list(rows[offset : offset + job.size])))
        offset += job.size


def fail(batch: Sequence[Job[Any]], error: BaseException) -> None:
    for job in batch:
        if not job.future.done():
            job.future.set_exception(error)
