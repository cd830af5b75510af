"""Counters of the llama.cpp engine, for ``info()["stats"]`` and later for /metrics.

Written by the decode thread only; readers take a snapshot (plain ints, so a read is never torn).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

# Upper bounds of the "tokens per decode step" histogram buckets (Prometheus-style, cumulative on export).
STEP_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


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
    step_tokens: int = 0
    step_histogram: list[int] = field(default_factory=lambda: [0] * (len(STEP_BUCKETS) + 1))

    def record_step(self, n_tokens: int) -> None:
        self.steps += 1
        self.step_tokens += n_tokens
        self.step_histogram[bisect.bisect_left(STEP_BUCKETS, n_tokens)] += 1

    def snapshot(self) -> dict[str, Any]:
        cumulative, total = {}, 0
        for bound, count in zip((*map(str, STEP_BUCKETS), "+Inf"), self.step_histogram):
            total += count
            cumulative[bound] = total
        return {
            "requests_total": self.requests,
            "cancelled_total": self.cancelled,
            "prompt_tokens_total": self.prompt_tokens,
            "prefix_cache_hit_tokens_total": self.cached_tokens,
            "prefix_cache_hits_total": self.prefix_hits,
            "prefix_cache_copies_total": self.prefix_copies,
            "generated_tokens_total": self.generated_tokens,
            "decode_steps_total": self.steps,
            "decode_step_tokens_total": self.step_tokens,
            "decode_step_tokens_bucket": cumulative,
        }
