"""The shapes the seeds' clients read: seed 000's /health, seed 002's /models/status summary and
load body; and a gateway configured from the environment only (seed-style deployment)."""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime
from pathlib import Path

import pytest
from gateway import MOCK_CONFIG, Gateway

from nanoserve.api.app import create_app
from nanoserve.config import Settings
from nanoserve.orchestrator.status import loaded_models, memory_summary


def test_health_has_a_timestamp(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        body = http.get("/health").json()
    assert body["status"] == "ok"
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.tzinfo is not None and abs(stamp.timestamp() - time.time()) < 60


def test_seed_002_load_body_and_status_summary(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        answer = http.post(
            "/models/load", json={"model": "mock-chat", "service": "llama-cpp", "priority": 10}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "ready" and answer.json()["service"] == "mock"
        assert "'llama-cpp' ignored" in answer.json()["note"]
        assert "note" not in http.post("/models/load", json={"model": "mc", "service": "MOCK"}).json()
        status = http.get("/models/status").json()
        ram = next(d for d in status["devices"] if d["name"] == "ram")
        # no GPU here: the summary is RAM's, as seed 002's client reads it
        assert status["memory_device"] == "ram" and status["gpus"] == []
        assert (status["total_mb"], status["free_mb"]) == (ram["total_mib"], ram["free_mib"])
        assert 0 < status["utilization_percent"] < 100
        entry = status["loaded_models"]["mock-chat"]
        assert entry["model"] == "mock-chat" and entry["service"] == "mock" and entry["status"] == "loaded"
        assert datetime.fromisoformat(entry["loaded_at"]).tzinfo is not None
        assert http.post("/models/unload", json={"model": "mock-chat"}).status_code == 200
        assert "mock-chat" not in http.get("/models/status").json()["loaded_models"]
        bad = http.post("/models/load", json={"model": "mock-chat", "service": 3})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "service"


def test_memory_summary_sums_the_gpus_else_ram() -> None:
    ram = {"name": "ram", "total_mib": 16000, "used_mib": 4000, "free_mib": 12000}
    gpus = [
        {"name": "gpu0", "total_mib": 32000, "used_mib": 16000, "free_mib": 16000},
        {"name": "gpu1", "total_mib": 8000, "used_mib": 2000, "free_mib": 6000},
    ]
    both = memory_summary([ram, *gpus])
    assert both["memory_device"] == "gpu"
    assert (both["total_mb"], both["used_mb"], both["free_mb"]) == (40000, 18000, 22000)
    assert both["utilization_percent"] == 45.0
    assert [(g["name"], g["free_mb"], g["utilization_percent"]) for g in both["gpus"]] == [
        ("gpu0", 16000, 50.0),
        ("gpu1", 6000, 25.0),
    ]
    alone = memory_summary([ram])
    assert (alone["memory_device"], alone["free_mb"], alone["utilization_percent"], alone["gpus"]) == (
        "ram",
        12000,
        25.0,
        [],
    )


def test_loaded_models_lists_the_models_holding_a_worker() -> None:
    models = [
        {"id": state, "engine": "llamacpp", "loaded_at": "2026-01-01T00:00:00Z", "state": state}
        for state in ("stopped", "starting", "ready", "draining", "failed")
    ]
    assert {k: v["status"] for k, v in loaded_models(models).items()} == {
        "starting": "loading",
        "ready": "loaded",
        "draining": "unloading",
    }


def test_openapi_describes_the_seed_fields() -> None:
    schemas = create_app(Settings(models=[])).openapi()["components"]["schemas"]
    status = schemas["AdminStatus"]
    assert {"total_mb", "used_mb", "free_mb", "utilization_percent", "gpus", "loaded_models"} <= set(
        status["required"]
    )
    assert set(schemas["LoadedModel"]["required"]) == {"model", "service", "loaded_at", "status"}
    assert "timestamp" in schemas["Liveness"]["required"]
    assert "service" in schemas["LoadRequest"]["properties"]


def test_a_gateway_configured_by_environment_only(tmp_path: Path) -> None:
    """Seed style: models, profile and logging from variables; the cloud profile's keys apply."""
    key = secrets.token_urlsafe(24)
    env = {
        "NANOSERVE_PROFILE": "cloud",
        "NANOSERVE_HOST": "127.0.0.1",
        "NANOSERVE_MODELS": json.dumps(MOCK_CONFIG["models"]),
        "NANOSERVE_OBSERVABILITY__OTLP_ENDPOINT": "",
        "NANOSERVE_BOOTSTRAP_KEY": key,
    }
    gw = Gateway(tmp_path, env=env)
    try:
        with gw.client() as http:
            assert http.get("/v1/models").status_code == 401  # auth.required from the profile
            names = [m["id"] for m in http.get("/v1/models", headers={"x-api-key": key}).json()["data"]]
        assert {"mock-chat", "mock-embed"} <= set(names)
        lines = [line for line in gw.log().splitlines() if line.startswith("{")]
        assert lines and all(json.loads(line)["msg"] for line in lines)  # JSON logs, cloud's
    finally:
        gw.stop()


@pytest.mark.parametrize("body", [{"model": "mock-chat", "service": "x" * 201}])
def test_service_is_bounded(mock_gateway: Gateway, body: dict[str, str]) -> None:
    with mock_gateway.client() as http:
        assert http.post("/models/load", json=body).status_code == 400
