"""Counters of the llama.cpp engine, for ``info()["stats"]`` (exported by the worker's /metrics).

Keys follow ``nanoserve.engines.stats``: ``*_total`` are counters, ``*_bucket``/``*_sum`` are
histograms (``batch_size`` = sequences per decode step, ``decode_step_tokens`` = tokens per
step), other numbers are gauges. Written by the decode thread only; readers get plain ints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nanoserve.engines.stats import BATCH_BUCKETS, BucketCounts

STEP_TOKEN_BUCKETS: tuple[float, ...] = (*BATCH_BUCKETS, 2048, 4096, 8192)


@dataclass
class EngineStats:
    requests: int = 0  # admitted to a slot
    cancelled: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens reused from the prefix cache
    prefix_hits: int = 0  # requests that reused at least one token
    prefix_copies: int = 0  # prefixes copied from another slot's sequence
    generated_tokens: int = 0
    steps: int = 0
    # the decode thread's CPU time (seconds) inside llama_decode, and around it (batching, sampling,
    # detokenizing, handing events over), idle waits excluded
    decode_native_cpu: float = 0.0
    decode_python_cpu: float = 0.0
    batch_size: BucketCounts = field(default_factory=BucketCounts)
    step_tokens: BucketCounts = field(default_factory=lambda: BucketCounts(STEP_TOKEN_BUCKETS))

    def record_step(self, sequences: int, tokens: int) -> None:
        self.steps += 1
        self.batch_size.observe(sequences)
        self.step_tokens.observe(tokens)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests,
            "cancelled_total": self.cancelled,
            "prompt_tokens_total": self.prompt_tokens,
            "prefix_cache_hit_tokens_total": self.cached_tokens,
            "prefix_cache_hits_total": self.prefix_hits,
            "prefix_cache_copies_total": self.prefix_copies,
            "generated_tokens_total": self.generated_tokens,
            "decode_steps_total": self.steps,
            "decode_native_cpu_seconds_total": self.decode_native_cpu,
            "decode_python_cpu_seconds_total": self.decode_python_cpu,
            **self.batch_size.export("batch_size"),
            **self.step_tokens.export("decode_step_tokens"),
        }
