"""The dashboard's per-second ring and its folding into chart points (pure, by tables)."""

from __future__ import annotations

import pytest

from nanoserve.dashboard.series import Series, percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 0.5, None), ([3.0], 0.95, 3.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0), ([*range(1, 101)], 0.95, 95)],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert percentile([float(v) for v in values], q) == expected


def request(series: Series, t: int, tokens: int = 10, **kw: object) -> None:
    args = {"prompt_tokens": 3, "completion_tokens": tokens, "ttft": 0.1, "queue": 0.01, "error": False}
    series.request(t, **{**args, "rejection": None, **kw})  # type: ignore[arg-type]


def test_window_counts_each_request_once_and_rates_tokens() -> None:
    s = Series()
    for t in (1000, 1000, 1001, 1059):
        request(s, t)
    request(s, 1001, tokens=0, rejection="queue_full", ttft=None, queue=None)
    w = s.window(1059, 60, points=60)
    assert w["step"] == 1 and len(w["points"]) == 60
    assert sum(p["requests"] for p in w["points"]) == 5 == w["totals"]["requests"]
    assert w["points"][0]["tokens_per_s"] == 20 and w["points"][0]["ttft_p50_ms"] == 100
    assert w["totals"]["rejections"] == {"queue_full": 1}
    folded = s.window(1059, 60, points=10)  # 6-second buckets: rates stay per second
    assert folded["step"] == 6 and folded["points"][0]["tokens_per_s"] == pytest.approx(30 / 6, abs=0.01)
    assert sum(p["requests"] for p in folded["points"]) == 5


def test_old_seconds_leave_the_ring_and_gaps_are_zero() -> None:
    s = Series(seconds=10)
    request(s, 100)
    request(s, 105)
    s.gauges(105, running=2, waiting=3)
    assert s.window(105, 10)["totals"]["requests"] == 2
    request(s, 200)  # far ahead: the ring holds only the last 10 seconds
    w = s.window(200, 10)
    assert w["totals"]["requests"] == 1 and all(p["running"] == 0 for p in w["points"])
    assert s.last(200)["requests"] == 1 and s.last(150)["requests"] == 0


def test_a_request_for_a_past_second_is_counted_in_it() -> None:
    s = Series()
    request(s, 10)
    request(s, 12)
    request(s, 11)  # finished just before the sampler rolled over
    assert [p["requests"] for p in s.window(12, 3)["points"]] == [1, 1, 1]
