"""Cross-encoder rerank engine (``kind: rerank``): sentence-transformers' ``CrossEncoder``.

A cross-encoder reads the query and one document together and gives one relevance logit (a
sequence-classification model with one label, e.g. ``cross-encoder/ms-marco-MiniLM-L6-v2``).
Concurrent ``score`` calls are micro-batched as embeddings are: the batcher takes what is waiting
(smallest first), waits at most ``max_wait_ms`` for more while under ``max_batch_tokens``, runs every
pair of the batch on one thread; each forward pass holds at most ``max_batch_tokens`` tokens with
padding, so a request with many documents runs in several passes rather than being refused.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nanoserve.engines.base import RerankEngine, Scores
from nanoserve.engines.batching import Job, MicroBatcher, deliver, fail
from nanoserve.engines.stats import BucketCounts
from nanoserve.errors import EngineError
from nanoserve.profiles.crossencoder import PROFILE, CrossEncoderOptions

CHARS_PER_TOKEN_CUT = 32  # texts are cut to max_length * this before tokenizing


@dataclass(eq=False, kw_only=True)
class _Pairs(Job[list[float]]):
    pairs: list[tuple[str, str]]
    pair_tokens: list[int]  # per pair, after truncation


class CrossEncoderEngine(RerankEngine):
    name = PROFILE.name
    Options = CrossEncoderOptions
    options: CrossEncoderOptions

    def __init__(self, spec: Any):
        super().__init__(spec)
        self._model: Any = None
        self._counter: Any = None  # a tokenizer of its own for counting on the event loop
        self._max_length = spec.context_length
        self._batcher: MicroBatcher[_Pairs] = MicroBatcher(
            self._predict,
            max_tokens=self.options.max_batch_tokens,
            max_wait_s=self.options.max_wait_ms / 1000,
            name="rerank-batcher",
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank")
        self.batches = 0
        self.scored_pairs = 0
        self.batch_sizes = BucketCounts()

    async def start(self) -> None:
        if self.spec.path is None:
            raise EngineError("cross-encoder engine needs a model directory")
        self._model = await asyncio.get_running_loop().run_in_executor(self._thread, self._load)
        self._counter = copy.deepcopy(self._model.tokenizer)
        self._batcher.start()

    def _load(self) -> Any:
        import torch
        from sentence_transformers import CrossEncoder

        torch.set_num_threads(self.spec.threads)
        model = CrossEncoder(
            str(self.spec.path),
            device=self.options.device,
            local_files_only=True,
            activation_fn=torch.nn.Identity(),  # logits; the worker turns them into probabilities
        )
        labels = getattr(model, "num_labels", 1)
        if labels != 1:
            raise EngineError(
                f"{self.spec.path} has {labels} output labels; a reranker has one (a relevance logit)"
            )
        limit = getattr(model, "max_length", None) or self.spec.context_length
        self._max_length = min(limit, self.spec.context_length)
        model.max_length = self._max_length
        return model

    async def close(self) -> None:
        self._batcher.stop()
        self._thread.shutdown(wait=False)

    def info(self) -> dict[str, Any]:
        return {
            "max_length": self._max_length,
            "stats": {
                "batches_total": self.batches,
                "scored_pairs_total": self.scored_pairs,
                **self.batch_sizes.export("rerank_batch_size"),
            },
        }

    def _count(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        encoded = self._counter(
            [q for q, _ in pairs],
            [d for _, d in pairs],
            truncation="longest_first",
            max_length=self._max_length,
        )["input_ids"]
        return [len(ids) for ids in encoded]

    async def score(self, query: str, documents: Sequence[str]) -> Scores:
        if not self._batcher.started:
            raise EngineError("engine not started")
        cut = self._max_length * CHARS_PER_TOKEN_CUT  # the tokenizer never reads a megabyte it drops
        pairs = [(query[:cut], d[:cut]) for d in documents]
        counts = self._count(pairs)
        job = _Pairs(
            size=len(pairs),
            tokens=sum(counts),
            future=asyncio.get_running_loop().create_future(),
            pairs=pairs,
            pair_tokens=counts,
        )
        logits = await self._batcher.submit(job)
        return Scores(logits=logits, prompt_tokens=job.tokens)

    async def _predict(self, batch: list[_Pairs]) -> None:
        pairs = [p for job in batch for p in job.pairs]
        longest = max(t for job in batch for t in job.pair_tokens) or 1
        per_pass = max(1, min(len(pairs), self.options.max_batch_tokens // longest))
        try:
            logits = await asyncio.get_running_loop().run_in_executor(
                self._thread, lambda: self._model.predict(pairs, batch_size=per_pass, show_progress_bar=False)
            )
        except Exception as exc:  # noqa: BLE001  (every waiting request hears of it)
            fail(batch, EngineError(f"reranking failed: {exc}"))
            return
        self.batches += 1
        self.scored_pairs += len(pairs)
        self.batch_sizes.observe(len(pairs))
        deliver(batch, [float(x) for x in logits.reshape(-1).tolist()], lambda job, rows: rows)
