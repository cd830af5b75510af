"""Continuous batching: one decode thread owns the llama.cpp context and runs every sequence.

Each step is one ``llama_decode`` over a batch that holds

* one token for every sequence that is generating (the token sampled in the previous step), and
* chunks of prompts still being evaluated (chunked prefill): at most ``prefill_chunk`` tokens
  per sequence, and at most ``prefill_budget`` in all while anything is generating, so no stream
  stalls for long; up to ``n_batch`` otherwise.

Requests enter from the event loop through ``submit``/``cancel`` (a lock-protected command list
and a condition variable); results leave once per step: one ``call_soon_threadsafe`` per event
loop carrying every event of that step, never one thread hop per token. A step's events are
handed over just before the next ``llama_decode`` (or when the thread goes idle), so the event
loop works while the native decode runs without the GIL instead of competing with the decode
thread for it.

Slot ``i`` runs llama.cpp sequence ``i``. A finished, cancelled or failed request leaves its
slot at once; the tokens already in the slot's KV cache stay there as a prefix cache for the
next request (see ``slots.choose_slot``), and the bookkeeping of which tokens those are is exact,
so a request can only ever reuse KV entries computed for its own prefix.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nanoserve.engines.base import Finished, GenerationEvent, SamplingParams, Token
from nanoserve.engines.llamacpp.detokenize import TextStream
from nanoserve.engines.llamacpp.native import Batch, LlamaModel
from nanoserve.engines.llamacpp.sampling import Sampler
from nanoserve.engines.llamacpp.slots import SlotView, choose_slot
from nanoserve.engines.llamacpp.stats import EngineStats
from nanoserve.errors import EngineError, NanoserveError, Unavailable

log = logging.getLogger(__name__)

Outcome = GenerationEvent | NanoserveError
Deliver = Callable[[list[Outcome]], None]


@dataclass(eq=False)
class Job:
    """One request. ``deliver`` runs on ``loop``; every other field belongs to the decode thread."""

    prompt: list[int]
    params: SamplingParams
    sampler: Sampler
    loop: asyncio.AbstractEventLoop
    deliver: Deliver
    text: TextStream = field(init=False)
    slot: Slot | None = None
    n_done: int = 0  # prompt tokens whose KV is in the slot
    cached: int = 0
    next_token: int | None = None  # sampled, not yet decoded
    generated: int = 0
    t_admit: float = 0.0
    t_first: float = 0.0

    def __post_init__(self) -> None:
        self.text = TextStream(self.params.stop)


@dataclass(eq=False)
class Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)  # exactly what sequence `seq` holds in the KV cache
    job: Job | None = None
    last_used: int = -1


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    n_batch: int
    prefill_chunk: int  # per sequence and step
    prefill_budget: int  # per step, while anything is decoding
    prefix_cache: bool = True
    prefix_copy_min: int = 32


class Scheduler:
    def __init__(self, model: LlamaModel, n_slots: int, config: SchedulerConfig, stats: EngineStats):
        self.model = model
        self.config = config
        self.stats = stats
        self.slots = [Slot(seq=i) for i in range(n_slots)]
        self._batch = Batch(max(config.n_batch, n_slots))
        self._cond = threading.Condition()
        self._commands: list[tuple[str, Job]] = []
        self._stopping = False
        self._closed: NanoserveError | None = None  # set when the thread ends; submit raises it
        self._pending: deque[Job] = deque()
        self._active: list[Job] = []  # in admission order
        self._outbox: dict[Job, list[Outcome]] = {}  # events not yet handed to their loops
        self._clock = 0
        self._cpu_mark = 0.0  # the decode thread's CPU time when its last llama_decode returned
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    # -- event loop side -------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue a job; once the decode thread has ended, raise why it did."""
        with self._cond:
            if self._closed is not None:
                raise type(self._closed)(self._closed.message)
            self._commands.append(("submit", job))
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        with self._cond:
            if self._closed is None:
                self._commands.append(("cancel", job))
                self._cond.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Fail what is left with Unavailable and end the thread (blocking: call off the loop)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def busy_slots(self) -> int:
        return sum(1 for s in self.slots if s.job is not None)

    @property
    def queued(self) -> int:
        return len(self._pending)

    # -- decode thread ---------------------------------------------------------------------

    def _run(self) -> None:
        _name_os_thread(THREAD_NAME)
        try:
            while True:
                with self._cond:
                    idle = not self._commands and not self._stopping and not self._runnable()
                if idle:
                    self._flush()
                with self._cond:
                    while not self._commands and not self._stopping and not self._runnable():
                        self._cond.wait()
                    commands, self._commands = self._commands, []
                    stopping = self._stopping
                self._apply(commands)
                if stopping:
                    self._close(Unavailable("the model is shutting down"))
                    return
                self._admit()
                if self._active:
                    self._step()
        except BaseException as exc:  # a bug or a native failure: nobody may wait forever
            log.exception("llama.cpp decode thread failed")
            self._close(EngineError(f"the llama.cpp decode thread failed: {exc}"))

    def _close(self, error: NanoserveError) -> None:
        """Refuse new work and fail every job still here, queued or running."""
        with self._cond:
            self._closed = error
            late, self._commands = self._commands, []
        self._pending.extend(job for kind, job in late if kind == "submit")
        self._fail_all(lambda: type(error)(error.message))

    def _runnable(self) -> bool:
        return bool(self._active) or (bool(self._pending) and any(s.job is None for s in self.slots))

    def _apply(self, commands: list[tuple[str, Job]]) -> None:
        for kind, job in commands:
            if kind == "submit":
                self._pending.append(job)
            elif job.slot is not None:
                self.stats.cancelled += 1
                self._release(job)
            elif job in self._pending:
                self.stats.cancelled += 1
                self._pending.remove(job)
                job.sampler.close()

    def _admit(self) -> None:
        while self._pending:
            views = [SlotView(cached=s.tokens, free=s.job is None, last_used=s.last_used) for s in self.slots]
            choice = choose_slot(
                self._pending[0].prompt,
                views,
                prefix_cache=self.config.prefix_cache,
                copy_min=self.config.prefix_copy_min,
            )
            if choice is None:
                return
            job = self._pending.popleft()
            slot = self.slots[choice.slot]
            reuse = choice.reuse
            if choice.copy_from is not None:
                donor = self.slots[choice.copy_from]
                self.model.seq_rm(slot.seq)
                self.model.seq_cp(donor.seq, slot.seq)
                slot.tokens = donor.tokens[:reuse]
                self.stats.prefix_copies += 1
            if not self.model.seq_rm(slot.seq, reuse, -1):  # a partial removal can fail: start over
                self.model.seq_rm(slot.seq)
                reuse = 0
            del slot.tokens[reuse:]
            slot.job, job.slot = job, slot
            job.n_done = job.cached = reuse
            job.t_admit = time.perf_counter()
            self._active.append(job)
            self.stats.requests += 1
            self.stats.prompt_tokens += len(job.prompt)
            self.stats.cached_tokens += reuse
            self.stats.prefix_hits += int(reuse > 0)

    def _step(self) -> None:
        batch = self._batch
        # Who takes part: every decoding sequence with its sampled token, and prompts still being
        # evaluated with a chunk each, the prefill budget going in admission order.
        plan: list[tuple[Job, int]] = []  # (job, prompt tokens it evaluates; 0: its next token)
        n_decoding = sum(1 for job in self._active if job.next_token is not None)
        budget = self.config.n_batch - n_decoding
        if n_decoding:
            budget = min(budget, self.config.prefill_budget)
        for job in self._active:
            if job.next_token is not None:
                plan.append((job, 0))
            elif budget > 0:
                take = min(budget, self.config.prefill_chunk, len(job.prompt) - job.n_done)
                plan.append((job, take))
                budget -= take
        # In sequence order: with one KV stream per sequence llama.cpp splits a batch into ubatches
        # of consecutive sequence ids, so any other order costs a graph computation per break.
        plan.sort(key=lambda entry: entry[0].slot.seq)  # type: ignore[union-attr]

        tokens: list[int] = []
        positions: list[int] = []
        seqs: list[int] = []
        outputs: list[Job] = []  # jobs to sample, in batch order of their output rows
        out_index: list[int] = []  # batch position of each output row
        for job, take in plan:
            slot = job.slot
            assert slot is not None
            if take == 0:
                out_index.append(len(tokens))
                outputs.append(job)
                tokens.append(job.next_token)  # type: ignore[arg-type]
                positions.append(len(slot.tokens))
                seqs.append(slot.seq)
                continue
            start = job.n_done
            tokens.extend(job.prompt[start : start + take])
            positions.extend(range(start, start + take))
            seqs.extend([slot.seq] * take)
            if start + take == len(job.prompt):
                out_index.append(len(tokens) - 1)
                outputs.append(job)

        n = len(tokens)
        batch.token[:n] = tokens
        batch.pos[:n] = positions
        batch.seq[:n] = seqs
        batch.logits[:n] = 0
        batch.logits[out_index] = 1
        batch.n_tokens = n  # output rows come back in batch order: the order of `outputs`

        self._flush()  # the loop handles the last step's events while llama_decode runs without the GIL
        cpu0 = time.thread_time()
        rc = self.model.decode(batch)
        cpu1 = time.thread_time()
        self.stats.decode_python_cpu += cpu0 - self._cpu_mark
        self.stats.decode_native_cpu += cpu1 - cpu0
        self._cpu_mark = cpu1
        self.stats.record_step(len(plan), n)
        if rc != 0:
            self._decode_failed(rc, [job for job, _ in plan])
            return

        for job, take in plan:
            slot = job.slot
            assert slot is not None
            if take == 0:
                slot.tokens.append(job.next_token)  # type: ignore[arg-type]
            else:
                slot.tokens.extend(job.prompt[job.n_done : job.n_done + take])
                job.n_done += take

        self._sample(outputs, out_index)

    def _sample(self, outputs: list[Job], out_index: list[int]) -> None:
        events: dict[Job, list[Outcome]] = {}
        if not outputs:
            return
        logits = self.model.logits(len(outputs))
        # Greedy rows (the fast path): one argmax over the whole block. An EOG token is masked
        # only when it won a row that must ignore it (masking lowers values, so a non-EOG winner
        # stays the first maximum either way).
        best = logits.argmax(axis=1).tolist() if all(j.sampler.chain is None for j in outputs) else None
        eog = self.model.is_eog
        now = time.perf_counter()
        for row, (job, index) in enumerate(zip(outputs, out_index)):
            if job.sampler.chain is None:
                token = best[row] if best is not None else int(logits[row].argmax())
                if job.sampler.ignore_eos and eog(token):
                    values = logits[row]
                    values[self.model.eog] = -np.inf
                    token = int(values.argmax())
            else:
                token = job.sampler.sample(self.model.context, index)
            events[job] = self._on_token(job, token, now)
        self._deliver(events)

    def _on_token(self, job: Job, token: int, now: float) -> list[Outcome]:
        if job.generated == 0:
            job.t_first = now
        if not job.params.ignore_eos and self.model.is_eog(token):
            return [self._finish(job, "stop", now, job.text.finish())]
        job.generated += 1
        self.stats.generated_tokens += 1
        text, stopped = job.text.feed(self.model.piece(token))
        if stopped:
            head: list[Outcome] = [Token(id=token, text=text)] if text else []
            return [*head, self._finish(job, "stop", now)]
        if job.generated >= job.params.max_tokens or job.params.out_of_time(now):
            return [Token(id=token, text=text), self._finish(job, "length", now, job.text.finish())]
        job.next_token = token
        return [Token(id=token, text=text)]

    def _finish(self, job: Job, reason: str, now: float, tail: str = "") -> Finished:
        self._release(job)
        return Finished(
            finish_reason=reason,  # type: ignore[arg-type]
            prompt_tokens=len(job.prompt),
            completion_tokens=job.generated,
            cached_tokens=job.cached,
            prompt_ms=(job.t_first - job.t_admit) * 1000,
            decode_ms=(now - job.t_first) * 1000,
            text=tail,
        )

    def _release(self, job: Job) -> None:
        """The job leaves its slot; the slot's KV stays as a prefix cache."""
        slot = job.slot
        if slot is not None:
            slot.job = None
            self._clock += 1
            slot.last_used = self._clock
            job.slot = None
        job.next_token = None
        if job in self._active:
            self._active.remove(job)
        job.sampler.close()

    def _decode_failed(self, rc: int, jobs: list[Job]) -> None:
        log.error("llama_decode failed (rc=%d) for %d sequence(s)", rc, len(jobs))
        for job in jobs:
            slot = job.slot
            if slot is not None:  # its KV state is unknown now: drop it
                self.model.seq_rm(slot.seq)
                slot.tokens.clear()
            self._release(job)
        self._deliver({job: [EngineError(f"llama_decode failed (rc={rc})")] for job in jobs})
        self._flush()

    def _fail_all(self, error: Callable[[], NanoserveError]) -> None:
        jobs = list(self._active) + list(self._pending)
        self._pending.clear()
        for job in jobs:
            self._release(job)
        self._deliver({job: [error()] for job in jobs})
        self._flush()

    def _deliver(self, events: dict[Job, list[Outcome]]) -> None:
        """Queue events for the event loop; ``_flush`` hands them over."""
        for job, outcomes in events.items():
            self._outbox.setdefault(job, []).extend(outcomes)

    def _flush(self) -> None:
        """One ``call_soon_threadsafe`` per event loop with everything queued since the last."""
        if not self._outbox:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, list[Outcome]]]] = {}
        for job, outcomes in self._outbox.items():
            by_loop.setdefault(job.loop, []).append((job, outcomes))
        self._outbox = {}
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_dispatch, items)
            except RuntimeError:  # the loop is closed: its consumers are gone
                for job, _ in items:
                    if job.slot is not None:
                        self._release(job)


THREAD_NAME = "llamacpp-decode"  # threads it starts (OpenMP's) inherit the name


def _name_os_thread(name: str) -> None:
    """Name the calling thread for the OS (top -H, /proc/<pid>/task/*/comm); Linux, best effort."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _dispatch(items: list[tuple[Job, list[Outcome]]]) -> None:
    for job, outcomes in items:
        job.deliver(outcomes)
