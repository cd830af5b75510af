"""The worker's /health while it loads: the engine's load phase ("converting", then "loading")."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from nanoserve.engines.base import CONVERTING, LOADING, EngineSpec
from nanoserve.engines.mock import MockEngine
from nanoserve.worker.app import create_worker_app


def _engine(**options: object) -> MockEngine:
    return MockEngine(EngineSpec(name="m", path=None, options=dict(options)))


def test_health_reports_the_engines_phase_while_loading() -> None:
    engine = _engine(load_seconds=60)
    with TestClient(create_worker_app(engine, "m")) as http:
        response = http.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "loading", "phase": LOADING}
        with engine.converting():
            assert http.get("/health").json() == {"status": "loading", "phase": CONVERTING}
        assert http.get("/health").json() == {"status": "loading", "phase": LOADING}


def test_the_mock_converts_then_loads_then_is_ready() -> None:
    engine = _engine(convert_seconds=0.6, load_seconds=0.6)
    seen: list[tuple[int, str | None]] = []
    with TestClient(create_worker_app(engine, "m")) as http:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = http.get("/health")
            answer = (response.status_code, response.json().get("phase"))
            if not seen or seen[-1] != answer:
                seen.append(answer)
            if response.status_code == 200:
                break
            time.sleep(0.02)
    assert seen == [(503, CONVERTING), (503, LOADING), (200, None)]


def test_a_ready_or_failed_worker_reports_no_phase() -> None:
    with TestClient(create_worker_app(_engine(fail_on_load=True), "m")) as http:
        deadline = time.monotonic() + 30
        while (response := http.get("/health")).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert response.status_code == 500
        assert "phase" not in response.json()


def test_converting_ends_even_if_the_conversion_fails() -> None:
    engine = _engine()
    with pytest.raises(RuntimeError), engine.converting():
        assert engine.phase == CONVERTING
        raise RuntimeError("export failed")
    assert engine.phase == LOADING
