"""Admission and the steps of a load waiting for memory, as tables."""

from __future__ import annotations

import pytest

from nanoserve.orchestrator.planner import Plan
from nanoserve.orchestrator.scheduler import QueueState, Step, admit, next_step


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
def test_admit(
    waiting: int, in_flight: int, parallel: int, max_queue: int, admitted: bool, queued: int
) -> None:
    state = QueueState(waiting, in_flight, parallel, max_queue)
    assert admit(state) is admitted
    assert state.queued == queued


FITS = Plan("m", {}, fits=True)
BLOCKED = Plan("m", {}, fits=False, blocked_by=("a",))
TWO = Plan("m", {}, fits=False, blocked_by=("a", "b"))
NEVER = Plan("m", {}, fits=False, never=True)


@pytest.mark.parametrize(
    ("plan", "waited", "ready_for", "step", "drain", "wake_in"),
    [
        (FITS, 0, {}, Step.LOAD, (), None),
        (FITS, 1000, {}, Step.LOAD, (), None),  # fitting always loads
        (NEVER, 0, {}, Step.NEVER, (), None),
        (BLOCKED, 0, {"a": 100}, Step.WAIT, (), 10),  # the busy model keeps serving
        (BLOCKED, 9, {"a": 100}, Step.WAIT, (), 1),
        (BLOCKED, 10, {"a": 100}, Step.DRAIN, ("a",), 50),  # waited max_wait: drain it
        (BLOCKED, 30, {"a": 4}, Step.WAIT, (), 6),  # a was just loaded: it gets its turn first
        (BLOCKED, 30, {}, Step.WAIT, (), 30),  # a is loading or stopping: only wait
        (TWO, 20, {"a": 50, "b": 2}, Step.DRAIN, ("a",), 8),
        (BLOCKED, 60, {"a": 100}, Step.BUSY, (), None),  # load_timeout: 503
    ],
)
def test_next_step(
    plan: Plan,
    waited: float,
    ready_for: dict[str, float],
    step: Step,
    drain: tuple[str, ...],
    wake_in: float | None,
) -> None:
    decision = next_step(plan, waited=waited, ready_for=ready_for, max_wait=10, load_timeout=60)
    assert decision.step is step
    assert decision.drain == drain
    assert decision.wake_in == wake_in


def test_zero_load_timeout_answers_busy_at_once() -> None:
    decision = next_step(BLOCKED, waited=0, ready_for={"a": 0}, max_wait=10, load_timeout=0)
    assert decision.step is Step.BUSY
