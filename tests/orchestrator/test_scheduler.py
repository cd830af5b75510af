"""Admission and the steps of a load waiting for memory, as tables."""

from __future__ import annotations

import pytest

from nanoserve.orchestrator.planner import Plan
from nanoserve.orchestrator.scheduler import QueueState, Step, admit, next_step, wake_after


@pytest.mark.parametrize(
    ("waiting", "in_flight", "parallel", "max_queue", "admitted", "queued"),
    [
        (0, 0, 4, 0, True, 0),  # the first request always gets in
        (0, 3, 4, 0, True, 0),  # a free slot
        (0, 4, 4, 0, False, 0),  # slots full, no queue allowed
        (0, 4, 4, 2, True, 0),
        (1, 5, 4, 2, False, 2),  # 4 slots + 2 queued taken
        (3, 0, 4, 0, True, 3),  # waiting for a load counts as queued
        (4, 0, 4, 0, False, 4),
        (0, 10, 2, 8, False, 8),
    ],
)
def test_admit(waiting: int, in_flight: int, parallel: int, max_queue: int, admitted: bool, queued: int) -> None:
    state = QueueState(waiting, in_flight, parallel, max_queue)
    assert admit(state) is admitted
    assert state.queued == queued


FITS = Plan("m", {}, fits=True)
BLOCKED = Plan("m", {}, fits=False, blocked_by=("a",))
NEVER = Plan("m", {}, fits=False, never=True)


@pytest.mark.parametrize(
    ("plan", "waited", "step"),
    [
        (FITS, 0, Step.LOAD),
        (FITS, 1000, Step.LOAD),  # fitting always loads
        (NEVER, 0, Step.NEVER),
        (BLOCKED, 0, Step.WAIT),  # the busy model keeps serving
        (BLOCKED, 9.9, Step.WAIT),
        (BLOCKED, 10, Step.DRAIN),  # waited max_wait: drain it
        (BLOCKED, 59, Step.DRAIN),
        (BLOCKED, 60, Step.BUSY),  # load_timeout: 503
    ],
)
def test_next_step(plan: Plan, waited: float, step: Step) -> None:
    assert next_step(plan, waited=waited, max_wait=10, load_timeout=60) is step


def test_zero_load_timeout_answers_busy_at_once() -> None:
    assert next_step(BLOCKED, waited=0, max_wait=10, load_timeout=0) is Step.BUSY


@pytest.mark.parametrize(("waited", "after"), [(0, 10), (4, 6), (10, 50), (30, 30), (60, 0)])
def test_wake_after_the_next_deadline(waited: float, after: float) -> None:
    assert wake_after(waited=waited, max_wait=10, load_timeout=60) == after
