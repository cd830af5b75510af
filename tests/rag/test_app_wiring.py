"""The gateway mounts /v1/rag and exposes the pipeline's metrics on /metrics."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from nanoserve.api.app import create_app
from nanoserve.api.rag import gateway_url
from nanoserve.config import Settings


def test_create_app_mounts_rag_and_its_metrics(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path)), base_url="http://localhost") as client:
        assert client.get("/v1/rag/collections").json() == {"object": "list", "data": []}
        assert client.get("/v1/rag/metrics").json() == {"object": "list", "data": []}
        missing = client.get("/v1/rag/traces/tr_nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        exposition = client.get("/metrics").text
        assert "# TYPE nanoserve_rag_queries_total counter" in exposition
        assert "# TYPE nanoserve_rag_query_latency_seconds histogram" in exposition


def test_rag_settings_come_from_the_config(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "rag": {"top_k": 5, "min_similarity": 0.2}}
    )
    assert (settings.rag.top_k, settings.rag.min_similarity) == (5, 0.2)
    app = create_app(settings)
    assert app.state.rag.config.top_k == 5


def test_gateway_url_is_loopback() -> None:
    assert gateway_url(Settings(host="0.0.0.0", port=8123)) == "http://127.0.0.1:8123"
    assert gateway_url(Settings(host="::", port=1)) == "http://[::1]:1"
    assert gateway_url(Settings(host="127.0.0.1", port=8000)) == "http://127.0.0.1:8000"
