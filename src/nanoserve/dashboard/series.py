"""Per-second figures over the last hour, kept in a ring: no database, bounded memory.

Each second is one ``Second``: requests finished in it (their tokens, TTFT and queue wait),
rejections by reason, and the running/waiting gauges sampled at its end. ``window()`` folds the
last N seconds into at most ``points`` buckets for a chart: tokens/s and requests/s as rates,
TTFT and queue wait as p50/p95, gauges as their maximum.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

HOUR = 3600
WINDOWS = (300, 900, 3600)  # the charts' 5, 15 and 60 minutes
MAX_SAMPLES = 256  # TTFT / queue values kept per second (enough for percentiles, bounded)


@dataclass(slots=True)
class Second:
    t: int  # unix second
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft: list[float] = field(default_factory=list)  # seconds
    queue: list[float] = field(default_factory=list)
    rejections: Counter[str] = field(default_factory=Counter)
    running: int = 0
    waiting: int = 0


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (``q`` in 0..1) of ``values``, None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Series:
    def __init__(self, seconds: int = HOUR):
        self._ring: deque[Second] = deque(maxlen=seconds)

    def at(self, t: int) -> Second:
        """The bucket of second ``t`` (created, with any gap before it, if new)."""
        ring = self._ring
        if ring and ring[-1].t >= t:
            for second in reversed(ring):
                if second.t == t:
                    return second
                if second.t < t:
                    break
            return ring[-1]  # a second already rolled past: count it in the newest one
        last = ring[-1].t if ring else t - 1
        for missing in range(max(last + 1, t - (ring.maxlen or HOUR) + 1), t + 1):
            ring.append(Second(missing))
        return ring[-1]

    def request(
        self,
        t: int,
        *,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        ttft: float | None,
        queue: float | None,
        error: bool,
        rejection: str | None,
    ) -> None:
        second = self.at(t)
        second.requests += 1
        second.errors += int(error)
        second.prompt_tokens += prompt_tokens or 0
        second.completion_tokens += completion_tokens or 0
        if ttft is not None and len(second.ttft) < MAX_SAMPLES:
            second.ttft.append(ttft)
        if queue is not None and len(second.queue) < MAX_SAMPLES:
            second.queue.append(queue)
        if rejection:
            second.rejections[rejection] += 1

    def gauges(self, t: int, running: int, waiting: int) -> None:
        second = self.at(t)
        second.running, second.waiting = running, waiting

    def last(self, t: int) -> dict[str, Any]:
        """Second ``t`` as one chart point (the live feed's payload)."""
        return _fold([s for s in self._ring if s.t == t] or [Second(t)], t, 1)

    def window(self, now: int, seconds: int, points: int = 300) -> dict[str, Any]:
        """The last ``seconds`` up to ``now`` in at most ``points`` buckets, oldest first, and
        the totals over the whole window."""
        step = max(1, math.ceil(seconds / points))
        start = now - seconds + 1
        inside = [s for s in self._ring if start <= s.t <= now]
        buckets: dict[int, list[Second]] = {}
        for second in inside:
            buckets.setdefault((second.t - start) // step, []).append(second)
        data = [_fold(buckets.get(i, []), start + i * step, step) for i in range(math.ceil(seconds / step))]
        rejections: Counter[str] = Counter()
        for second in inside:
            rejections.update(second.rejections)
        ttft = [v for s in inside for v in s.ttft]
        queue = [v for s in inside for v in s.queue]
        totals = {
            "requests": sum(s.requests for s in inside),
            "errors": sum(s.errors for s in inside),
            "prompt_tokens": sum(s.prompt_tokens for s in inside),
            "completion_tokens": sum(s.completion_tokens for s in inside),
            "rejections": dict(rejections),
            "ttft_p50_ms": _ms(percentile(ttft, 0.5)),
            "ttft_p95_ms": _ms(percentile(ttft, 0.95)),
            "queue_p50_ms": _ms(percentile(queue, 0.5)),
            "queue_p95_ms": _ms(percentile(queue, 0.95)),
        }
        return {"seconds": seconds, "step": step, "points": data, "totals": totals}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def _fold(seconds: list[Second], t: int, step: int) -> dict[str, Any]:
    ttft = [v for s in seconds for v in s.ttft]
    queue = [v for s in seconds for v in s.queue]
    rejections: Counter[str] = Counter()
    for second in seconds:
        rejections.update(second.rejections)
    return {
        "t": t,
        "requests": sum(s.requests for s in seconds),
        "errors": sum(s.errors for s in seconds),
        "tokens_per_s": round(sum(s.completion_tokens for s in seconds) / step, 2),
        "ttft_p50_ms": _ms(percentile(ttft, 0.5)),
        "ttft_p95_ms": _ms(percentile(ttft, 0.95)),
        "queue_p50_ms": _ms(percentile(queue, 0.5)),
        "queue_p95_ms": _ms(percentile(queue, 0.95)),
        "running": max((s.running for s in seconds), default=0),
        "waiting": max((s.waiting for s in seconds), default=0),
        "rejections": dict(rejections),
    }
