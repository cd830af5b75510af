"""Counters an engine keeps for ``info()["stats"]``: plain numbers, no metrics library.

The worker turns an engine's stats into Prometheus families at scrape time
(``nanoserve.worker.metrics``), by the shape of each key:

* ``<name>_total``: a monotonic count → counter ``nanoserve_engine_<name>_total``
* ``<name>_bucket``: ``{upper bound: cumulative count, ..., "+Inf": count}``, with an optional
  ``<name>_sum`` → histogram ``nanoserve_<name>`` (``batch_size`` = sequences per decode step,
  ``embedding_batch_size`` = inputs per forward pass)
* any other number → gauge ``nanoserve_engine_<name>`` (slots busy, queued, ...)

An engine updates its counters from one thread (its decode loop or its batcher); readers take a
snapshot of plain ints, so a read is never torn.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass
class BucketCounts:
    """A histogram as plain counts: ``observe`` is a bisect and two additions."""

    bounds: tuple[float, ...] = BATCH_BUCKETS
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def export(self, name: str) -> dict[str, Any]:
        """``{name}_bucket`` (cumulative, Prometheus-style) and ``{name}_sum``."""
        cumulative: dict[str, int] = {}
        running = 0
        for bound, n in zip((*map(_bound, self.bounds), "+Inf"), self.counts):
            running += n
            cumulative[bound] = running
        return {f"{name}_bucket": cumulative, f"{name}_sum": self.sum}
