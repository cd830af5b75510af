"""sentence-transformers embedding engine with dynamic micro-batching.

Two backends (``options.backend``, nanoserve.profiles.sentence): torch runs sentence-transformers;
onnx and onnx-int8 run an ONNX export of the same weights with ONNX Runtime (sentence_onnx.py).

Concurrent ``embed`` calls are gathered into one forward pass: the batcher takes what is
waiting, smallest requests first (a query is not held behind bulk requests: engines/batching.py),
waits at most ``max_wait_ms`` for more while the batch is under its token budget, and runs the
batch in one worker thread (one thread hop per batch, not per request). Texts are
sorted by length inside a batch so padding stays small.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from nanoserve.engines.base import EmbeddingEngine, Embeddings
from nanoserve.engines.batching import Job, MicroBatcher, deliver, fail
from nanoserve.engines.stats import BucketCounts
from nanoserve.errors import EngineError, PayloadTooLarge
from nanoserve.profiles.sentence import PROFILE, SentenceOptions, resolve_backend

MAX_CHARS_PER_TOKEN = 32  # texts are cut to max_seq_length * this before tokenizing


@dataclass(eq=False, kw_only=True)
class _Job(Job[list[list[float]]]):
    texts: Sequence[str]
    longest: int  # tokens of its longest text: a forward pass pads every text to its batch's longest
    encodings: list[Any] | None  # the onnx backend's tokenized texts (tokenized once, when counted)


class SentenceTransformersEngine(EmbeddingEngine):
    name = PROFILE.name
    Options = SentenceOptions
    options: SentenceOptions

    def __init__(self, spec: Any):
        super().__init__(spec)
        self._model: Any = None  # torch: the SentenceTransformer
        self._onnx: Any = None  # onnx: the OnnxEncoder
        self._counter: Any = None
        self.backend = "torch"
        self._max_seq = 0
        self._batcher: MicroBatcher[_Job] = MicroBatcher(
            self._encode,
            max_tokens=self.options.max_batch_tokens,
            max_wait_s=self.options.max_wait_ms / 1000,
            name="embedding-batcher",
        )
        # Every forward pass on one thread: passes run one at a time anyway, and each thread that
        # runs one keeps its own malloc arena at its peak (4 threads in turn: 1.5x the memory).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._dims = 0
        self.batches = 0
        self.batched_inputs = 0
        self.last_batch_size = 0
        self.batch_sizes = BucketCounts()

    async def start(self) -> None:
        if self.spec.path is None:
            raise EngineError("sentence-transformers engine needs a model directory")
        self.backend = resolve_backend(self.options.backend, self.spec.path)
        if self.backend != "torch":
            self._onnx = await asyncio.get_running_loop().run_in_executor(self._thread, self._load_onnx)
            self._dims = self._onnx.dimensions
            self._batcher.start()
            return
        self._model = await asyncio.get_running_loop().run_in_executor(self._thread, self._load)
        self._max_seq = self._model.max_seq_length
        # Token counting runs on the event loop while a batch encodes in its thread: a fast
        # tokenizer's truncation and padding are settings of the object that each call changes,
        # so sharing one made concurrent batches fail ("Unable to create tensor ... padding").
        self._counter = copy.deepcopy(self._model.tokenizer)
        # renamed in sentence-transformers 5; the old name warns
        dimension = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self._dims = int(dimension())
        self._batcher.start()

    def _load(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.spec.threads)
        model = SentenceTransformer(str(self.spec.path), device=self.options.device, local_files_only=True)
        model.max_seq_length = min(model.max_seq_length or self.spec.context_length, self.spec.context_length)
        return model

    def _load_onnx(self) -> Any:
        from nanoserve.config import default_data_dir
        from nanoserve.engines.sentence_onnx import OnnxEncoder, ensure_onnx

        assert self.spec.path is not None
        model_file = ensure_onnx(
            self.spec.path,
            self.backend,
            self.spec.data_dir or default_data_dir(),
            threads=self.spec.threads,
            converting=self.converting,
        )
        # as sentence-transformers reads it: its config's max_seq_length, within the context length
        try:
            configured = json.loads((self.spec.path / "sentence_bert_config.json").read_text())
        except (OSError, ValueError):
            configured = {}
        limit = self.spec.context_length
        self._max_seq = min(int(configured.get("max_seq_length") or limit), limit)
        return OnnxEncoder(
            self.spec.path, model_file, threads=self.spec.threads, max_seq_length=self._max_seq
        )

    async def close(self) -> None:
        self._batcher.stop()
        self._thread.shutdown(wait=False)

    @property
    def dimensions(self) -> int:
        return self._dims

    def info(self) -> dict[str, Any]:
        return {
            "dimensions": self._dims,
            "max_seq_length": self._max_seq or None,
            "backend": self.backend,
            "stats": {
                "batches_total": self.batches,
                "batched_inputs_total": self.batched_inputs,
                **self.batch_sizes.export("embedding_batch_size"),
            },
        }

    def _count_tokens(self, texts: Sequence[str]) -> list[int]:
        tokenizer = self._counter
        limit = self._max_seq
        encoded = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=limit)[
            "input_ids"
        ]
        return [len(ids) for ids in encoded]

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        if not self._batcher.started:
            raise EngineError("engine not started")
        # Inputs are truncated to max_seq_length tokens anyway; cutting absurd texts first keeps
        # the tokenizer from spending seconds on a megabyte it would throw away.
        cut = self._max_seq * MAX_CHARS_PER_TOKEN
        texts = [t[:cut] for t in texts]
        encodings = self._onnx.tokenize(texts) if self._onnx is not None else None
        counts = [len(e.ids) for e in encodings] if encodings is not None else self._count_tokens(texts)
        tokens = sum(counts)
        if tokens > self.options.max_batch_tokens:
            raise PayloadTooLarge(
                f"this embedding request is {tokens} tokens; one request may have at most "
                f"{self.options.max_batch_tokens} (the model's options.max_batch_tokens): split the input",
                param="input",
            )
        job = _Job(
            size=len(texts),
            tokens=tokens,
            future=asyncio.get_running_loop().create_future(),
            texts=texts,
            longest=max(counts, default=0),
            encodings=encodings,
        )
        vectors = await self._batcher.submit(job)
        return Embeddings(vectors=vectors, prompt_tokens=tokens)

    async def _encode(self, batch: list[_Job]) -> None:
        texts = [t for job in batch for t in job.texts]
        # One forward pass holds at most max_batch_tokens tokens with padding (both backends sort
        # by length, then pad each pass to its longest text): the activations, and so the
        # worker's memory, stay within the planned size whatever the mix of lengths.
        if self._onnx is not None:
            run = partial(
                self._onnx.encode,
                [e for job in batch for e in job.encodings or ()],
                self.options.max_batch_tokens,
                normalize=self.options.normalize,
            )
        else:
            longest = max((job.longest for job in batch), default=1) or 1
            per_pass = max(1, self.options.max_batch_tokens // longest)
            run = partial(
                self._model.encode,
                texts,
                batch_size=min(len(texts), per_pass),
                normalize_embeddings=self.options.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        try:
            array = await asyncio.get_running_loop().run_in_executor(self._thread, run)
        except Exception as exc:  # noqa: BLE001  (every waiting request hears of it)
            fail(batch, EngineError(f"embedding failed: {exc}"))
            return
        self.batches += 1
        self.batched_inputs += len(texts)
        self.last_batch_size = len(texts)
        self.batch_sizes.observe(len(texts))
        deliver(batch, array.tolist(), lambda job, rows: rows)
