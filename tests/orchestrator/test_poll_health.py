"""poll_health: the start timeout counts per load phase, and a load that runs out of it is a 503."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import pytest
from fakeclock import FakeClock

from nanoserve.errors import EngineError, WorkerUnavailable
from nanoserve.orchestrator.handles import base
from nanoserve.orchestrator.handles.base import LOAD_TIMEOUT_RETRY_AFTER, poll_health

TIMEOUT = 10.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(base, "time", SimpleNamespace(monotonic=clock))  # not asyncio's clock
    monkeypatch.setattr(base, "HEALTH_POLL_MAX", 0.001)  # the real sleeps between polls stay short
    return clock


class _Handle:
    model = "m"

    def __init__(self) -> None:
        self.alive = True

    def exit_reason(self) -> str:
        return "worker (pid 12) exited with code 1"

    def log_tail(self) -> str:
        return "the log"


class _Check:
    """Answers from a script of (seconds, answer): ``answer`` for that long on the fake clock, then
    the next; each poll advances the clock by ``step``. After the script: True (ready)."""

    def __init__(self, clock: FakeClock, script: Sequence[tuple[float, bool | str]], step: float = 0.5):
        self.clock, self.step = clock, step
        self.ends: list[tuple[float, bool | str]] = []
        at = clock.now
        for seconds, answer in script:
            at += seconds
            self.ends.append((at, answer))
        self.polls = 0

    async def __call__(self) -> bool | str:
        self.polls += 1
        now = self.clock.now
        self.clock.now += self.step
        return next((answer for end, answer in self.ends if now < end), True)


async def test_each_phase_gets_the_timeout(clock: FakeClock) -> None:
    # 4 s starting, 9 s converting, 9 s loading: 22 s in all, more than twice the timeout
    check = _Check(clock, [(4, False), (9, "converting"), (9, "loading")])
    await poll_health(_Handle(), check, TIMEOUT)
    assert clock.now >= 1022  # it waited for every phase to end, then saw ready
    assert check.polls == 45


async def test_a_phase_that_comes_back_starts_over(clock: FakeClock) -> None:
    check = _Check(clock, [(8, "loading"), (8, "converting"), (8, "loading")])
    await poll_health(_Handle(), check, TIMEOUT)


async def test_a_backend_without_phases_gets_the_timeout_once(clock: FakeClock) -> None:
    check = _Check(clock, [(TIMEOUT + 5, False)])
    with pytest.raises(WorkerUnavailable) as caught:
        await poll_health(_Handle(), check, TIMEOUT)
    assert 1000 + TIMEOUT <= clock.now <= 1000 + TIMEOUT + 1
    error = caught.value
    assert error.status == 503 and error.retry_after == LOAD_TIMEOUT_RETRY_AFTER
    assert "within 10s" in error.message and "worker_start_timeout" in error.message
    assert "the log" in error.message


async def test_the_timeout_names_the_phase_and_the_setting(clock: FakeClock) -> None:
    check = _Check(clock, [(2, "loading"), (TIMEOUT + 5, "converting")])
    with pytest.raises(WorkerUnavailable) as caught:
        await poll_health(_Handle(), check, TIMEOUT, setting="options.start_timeout")
    assert 1002 + TIMEOUT <= clock.now <= 1002 + TIMEOUT + 1  # counted from the phase's start
    assert "still converting after 10s" in caught.value.message
    assert "options.start_timeout" in caught.value.message


async def test_the_same_phase_does_not_restart_the_deadline(clock: FakeClock) -> None:
    check = _Check(clock, [(TIMEOUT + 5, "loading")])
    with pytest.raises(WorkerUnavailable, match="still loading"):
        await poll_health(_Handle(), check, TIMEOUT)
    assert clock.now <= 1000 + TIMEOUT + 1


async def test_a_backend_that_exits_is_a_500(clock: FakeClock) -> None:
    handle = _Handle()
    handle.alive = False
    with pytest.raises(EngineError) as caught:
        await poll_health(handle, _Check(clock, [(5, "loading")]), TIMEOUT)
    assert type(caught.value) is EngineError and caught.value.status == 500
    assert "exited with code 1" in caught.value.message


async def test_a_reported_failure_is_a_500(clock: FakeClock) -> None:
    async def failed() -> bool:
        raise EngineError("model 'm' failed to load: boom")

    with pytest.raises(EngineError) as caught:
        await poll_health(_Handle(), failed, TIMEOUT)
    assert type(caught.value) is EngineError and caught.value.status == 500
