"""Restart back-off: a model that keeps failing is not reloaded on every request."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fakeclock import FakeClock
from gateway import Gateway

from nanoserve.orchestrator import instance
from nanoserve.orchestrator.instance import FREE_RESTARTS, ModelInstance

CHAT = {"model": "broken", "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(instance.time, "monotonic", clock)
    return clock


def _instance() -> ModelInstance:
    from nanoserve.config import ModelConfig

    return ModelInstance(ModelConfig(id="m", engine="mock"), host=None, start_timeout=1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failures", "delay"),
    [
        (1, 0.0),
        (FREE_RESTARTS, 0.0),
        (FREE_RESTARTS + 1, 2.0),
        (FREE_RESTARTS + 2, 4.0),
        (FREE_RESTARTS + 3, 8.0),
        (40, 60.0),
    ],
)
def test_back_off_grows_after_the_free_restarts(clock: FakeClock, failures: int, delay: float) -> None:
    model = _instance()
    for _ in range(failures):
        model._count_failure(ran_for=1.0)
    assert model.backoff_remaining() == delay
    clock.now += delay
    assert model.backoff_remaining() == 0.0


def test_a_worker_that_ran_long_enough_starts_the_count_over(clock: FakeClock) -> None:
    model = _instance()
    for _ in range(FREE_RESTARTS + 3):
        model._count_failure(ran_for=1.0)
    model._count_failure(ran_for=instance.STABLE_SECONDS)
    assert model.failures == 1
    assert model.backoff_remaining() == 0.0


def test_a_model_that_keeps_failing_gets_503_with_retry_after(tmp_path: Path) -> None:
    config = {"models": [{"id": "broken", "engine": "mock", "options": {"fail_on_load": True}}]}
    gw = Gateway(tmp_path, config)
    try:
        with gw.client() as http:
            for _ in range(FREE_RESTARTS + 1):  # each one loads, and the load fails
                resp = http.post("/v1/chat/completions", json=CHAT)
                assert resp.status_code == 500
                assert "fail_on_load" in resp.json()["error"]["message"]
            started = gw.log_path.read_text().count("started worker pid")
            t0 = time.perf_counter()
            resp = http.post("/v1/chat/completions", json=CHAT)
            elapsed = time.perf_counter() - t0
            assert resp.status_code == 503
            assert resp.headers["Retry-After"] == "2"
            message = resp.json()["error"]["message"]
            assert f"failed {FREE_RESTARTS + 1} times in a row" in message and "fail_on_load" in message
            assert gw.log_path.read_text().count("started worker pid") == started  # no load was tried
            assert elapsed < 1.0
            time.sleep(2.1)
            resp = http.post("/v1/chat/completions", json=CHAT)  # the back-off is over: it loads again
            assert resp.status_code == 500
            resp = http.post("/v1/chat/completions", json=CHAT)
            assert resp.status_code == 503
            assert resp.headers["Retry-After"] == "4"
    finally:
        gw.stop()
