"""Deterministic mock engines: configurable load time, latency and token rate.

For policy and failure tests and for demos (switch mock/real by config, same code path). The text
is a deterministic function of the prompt and seed, so tests can compare runs. ``memory_mib``
really allocates (and touches) that much memory in the worker, so the orchestrator measures a
real footprint.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from nanoserve.engines.base import (
    EmbeddingEngine,
    Embeddings,
    EngineSpec,
    Finished,
    GenerationEngine,
    GenerationEvent,
    GenerationRequest,
    Token,
)
from nanoserve.engines.stats import BucketCounts
from nanoserve.engines.text import StopMatcher
from nanoserve.errors import ContextLengthExceeded
from nanoserve.profiles.mock import MOCK, MOCK_EMBEDDING, MockOptions
from nanoserve.wire.simgpu import DEVICE_ENV, SIMGPU_DIR_ENV, write_ledger

_WORDS = [
    "the",
    "a",
    "model",
    "token",
    "small",
    "fast",
    "local",
    "serve",
    "batch",
    "memory",
    "queue",
    "worker",
    "answer",
    "paris",
    "france",
    "river",
    "light",
    "stone",
    "cloud",
    "green",
    "quiet",
    "north",
    "window",
    "garden",
    "signal",
]


def _allocate(mib: int) -> bytearray | None:
    if mib <= 0:
        return None
    block = bytearray(mib * 1024 * 1024)
    for i in range(0, len(block), 4096):  # touch every page so it counts in RSS
        block[i] = 1
    return block


class _MockBase:
    options: MockOptions
    converting: Callable[[], AbstractContextManager[object]]

    async def _load(self) -> None:
        if self.options.convert_seconds:
            with self.converting():
                await asyncio.sleep(self.options.convert_seconds)
        if self.options.fail_on_load:
            raise RuntimeError("mock engine configured with fail_on_load")
        if self.options.load_seconds:
            await asyncio.sleep(self.options.load_seconds)
        self._ballast = _allocate(self.options.memory_mib)
        directory, device = os.environ.get(SIMGPU_DIR_ENV), os.environ.get(DEVICE_ENV, "")
        if self.options.vram_mib and directory and device.startswith("gpu"):
            # a simulated GPU: the gateway reads this ledger as NVML's per-process list
            write_ledger(Path(directory), device, self.options.vram_mib * 1024 * 1024)


class MockEngine(_MockBase, GenerationEngine):
    name = MOCK.name
    Options = MockOptions
    options: MockOptions

    running = 0  # generations under way (closed ones, whose client left, are not counted)

    async def start(self) -> None:
        await self._load()

    def info(self) -> dict[str, Any]:
        return {
            "slots": self.spec.parallel,
            "memory_mib": self.options.memory_mib,
            "stats": {"requests_running": self.running},
        }

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.running += 1
        try:
            async for event in self._generate(request):
                yield event
        finally:
            self.running -= 1

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        parts = [f"<|{m.get('role', 'user')}|>{m.get('content') or ''}\n" for m in messages]
        if tools:
            parts.insert(0, f"<|tools|>{json.dumps(list(tools))}\n")
        return "".join(parts) + ("<|assistant|>" if add_generation_prompt else "")

    def tokenize(self, text: str) -> list[int]:
        return [
            int.from_bytes(hashlib.blake2b(w.encode(), digest_size=2).digest(), "big") for w in text.split()
        ]

    def _words(self, request: GenerationRequest) -> list[str]:
        if self.options.reply is not None:
            return [w + " " for w in self.options.reply.split()]
        prompt = request.prompt if isinstance(request.prompt, str) else " ".join(map(str, request.prompt))
        seed = int.from_bytes(hashlib.sha256(f"{prompt}|{request.params.seed}".encode()).digest()[:8], "big")
        rng = random.Random(seed)
        return [rng.choice(_WORDS) + " " for _ in range(request.params.max_tokens)]

    async def _generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        params = request.params
        prompt_tokens = (
            len(request.prompt) if isinstance(request.prompt, list) else len(self.tokenize(request.prompt))
        )
        if prompt_tokens + params.max_tokens > self.context_length:
            raise ContextLengthExceeded(prompt_tokens, params.max_tokens, self.context_length)
        start = time.perf_counter()
        if self.options.ttft_ms:
            await asyncio.sleep(self.options.ttft_ms / 1000)
        first = time.perf_counter()
        interval = 1.0 / self.options.tokens_per_second if self.options.tokens_per_second else 0.0
        stops = StopMatcher(params.stop)
        words = self._words(request)[: params.max_tokens]
        produced = 0
        reason = "length"
        for i, word in enumerate(words):
            if i and interval:
                # Pace against the clock, not per-sleep, so the rate holds under load.
                delay = first + i * interval - time.perf_counter()
                await asyncio.sleep(max(0.0, delay))
            elif not interval and i % 16 == 15:
                await asyncio.sleep(0)
            produced += 1
            text, stopped = stops.feed(word)
            if stopped:
                if text:
                    yield Token(id=i, text=text)
                reason = "stop"
                break
            yield Token(id=i, text=text)
            if params.out_of_time(time.perf_counter()):
                break  # "length", as at max_tokens
        else:
            if len(words) < params.max_tokens:
                reason = "stop"
        done = time.perf_counter()
        yield Finished(
            finish_reason=reason,  # type: ignore[arg-type]
            prompt_tokens=prompt_tokens,
            completion_tokens=produced,
            prompt_ms=(first - start) * 1000,
            decode_ms=(done - first) * 1000,
            text=stops.flush() if reason != "stop" else "",
        )


class MockEmbeddingEngine(_MockBase, EmbeddingEngine):
    name = MOCK_EMBEDDING.name
    Options = MockOptions
    options: MockOptions

    def __init__(self, spec: EngineSpec):
        super().__init__(spec)
        self.batch_sizes = BucketCounts()  # every call is one batch: no micro-batching here

    async def start(self) -> None:
        await self._load()

    def info(self) -> dict[str, Any]:
        return {"stats": self.batch_sizes.export("embedding_batch_size")}

    @property
    def dimensions(self) -> int:
        return self.options.dimensions

    def _vector(self, text: str) -> list[float]:
        rng = random.Random(hashlib.sha256(text.encode()).digest())
        vec = [rng.gauss(0.0, 1.0) for _ in range(self.dimensions)]
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        if self.options.ttft_ms:
            await asyncio.sleep(self.options.ttft_ms / 1000)
        self.batch_sizes.observe(len(texts))
        return Embeddings(
            vectors=[self._vector(t) for t in texts], prompt_tokens=sum(len(t.split()) for t in texts)
        )
