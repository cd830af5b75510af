"""Per-key limits over a sliding minute, by tables (the clock is a parameter)."""

from __future__ import annotations

from collections import deque

import pytest

from nanoserve.auth.limits import Limiter, Window
from nanoserve.auth.store import Limits


@pytest.mark.parametrize(
    ("limits", "requests", "tokens", "running", "now", "limit", "retry"),
    [
        (Limits(), [0.0] * 100, [(0.0, 10**6)], 50, 1.0, None, None),
        (Limits(rpm=2), [0.0], [], 0, 1.0, None, None),
        (Limits(rpm=2), [0.0, 10.0], [], 0, 20.0, "rpm", 40.0),  # the first leaves at 60
        (Limits(rpm=2), [0.0, 10.0, 30.0], [], 0, 40.0, "rpm", 30.0),  # two must leave: at 70
        (Limits(tpm=100), [], [(0.0, 60)], 0, 5.0, None, None),
        (Limits(tpm=100), [], [(0.0, 60), (10.0, 50)], 0, 20.0, "tpm", 40.0),
        (Limits(tpm=100), [], [(0.0, 80), (10.0, 80), (20.0, 30)], 0, 30.0, "tpm", 40.0),
        (Limits(max_concurrent=2), [], [], 1, 0.0, None, None),
        (Limits(max_concurrent=2), [], [], 2, 0.0, "max_concurrent", 1.0),
        (Limits(rpm=1, max_concurrent=1), [0.0], [], 1, 1.0, "max_concurrent", 1.0),  # checked first
    ],
)
def test_window_check(
    limits: Limits,
    requests: list[float],
    tokens: list[tuple[float, int]],
    running: int,
    now: float,
    limit: str | None,
    retry: float | None,
) -> None:
    window = Window(deque(requests), deque(tokens), sum(t for _, t in tokens), running)
    window.prune(now)
    refused = window.check(limits, now, "k")
    assert (refused.limit if refused else None) == limit
    if refused is not None:
        assert refused.retry_after == pytest.approx(retry)
        assert refused.status == 429 and limit in refused.message and "'k'" in refused.message


def test_window_forgets_after_a_minute() -> None:
    window = Window(deque([0.0, 1.0]), deque([(0.0, 500)]), 500, 0)
    window.prune(61.0)
    assert list(window.requests) == [] and window.token_sum == 0


def test_limiter_counts_enter_leave_and_tokens() -> None:
    limiter, limits = Limiter(), Limits(rpm=10, tpm=100, max_concurrent=1)
    assert limiter.enter("k", limits, 0.0) is None
    refused = limiter.enter("k", limits, 0.1)
    assert refused is not None and refused.limit == "max_concurrent"
    limiter.leave("k")
    limiter.charge("k", 150, 1.0)
    refused = limiter.enter("k", limits, 2.0)
    assert refused is not None and refused.limit == "tpm" and refused.retry_after == pytest.approx(59.0)
    assert limiter.enter("k", limits, 61.5) is None  # the tokens left the window
    assert limiter.enter("other", limits, 61.5) is None  # windows are per key
