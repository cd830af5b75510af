"""Micro-batching for the engines that run one forward pass over many requests (embeddings, rerank).

Requests queue on the event loop as jobs; one task forms batches: the first job waiting, then
every job already queued or arriving before ``max_wait_s`` has passed since the first one
*arrived* (one that queued behind a long pass is not held back further), until the batch holds
``max_tokens``. ``run`` gets each batch without the jobs whose client already left, and
``deliver``/``fail`` hand each job its share of the results.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

R = TypeVar("R")


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
        self, run: Callable[[list[J]], Awaitable[None]], *, max_tokens: int, max_wait_s: float, name: str
    ):
        self._run = run
        self._max_tokens = max_tokens
        self._max_wait_s = max_wait_s
        self._name = name
        self._queue: asyncio.Queue[J] = asyncio.Queue()
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
        self._queue.put_nowait(job)
        return await job.future

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            budget = self._max_tokens - batch[0].tokens
            deadline = batch[0].enqueued + self._max_wait_s
            while budget > 0 and (job := await self._next(deadline)) is not None:
                batch.append(job)
                budget -= job.tokens
            live = [job for job in batch if not job.future.done()]  # a cancelled job's client left
            if live:
                await self._run(live)

    async def _next(self, deadline: float) -> J | None:
        """A job already waiting, else the next to arrive before ``deadline`` (None: none did).
        (``wait_for`` with a spent timeout gives up even with jobs waiting: ask the queue first.)"""
        if not self._queue.empty():
            return self._queue.get_nowait()
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), remaining)
        except TimeoutError:
            return None


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
