"""The inference routes' direct dispatch (api/fastpath.py) agrees with the routes the app declares.

What they answer is tested through them everywhere else (test_errors.py, test_ollama_errors.py,
the real-model tests); here: the table and the router name the same paths, a request by another
method still gets the router's answer, and the request is labelled with its route.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from nanoserve.api.app import create_app
from nanoserve.api.fastpath import InferenceRoutes, inference_handlers
from nanoserve.config import Settings


def test_every_directly_dispatched_path_is_a_post_route_of_the_app(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    paths = app.openapi()["paths"]
    table = inference_handlers(app.state.openai, app.state.ollama)
    assert len(table) == 9
    for path in table:
        assert "post" in paths[path], path
    assert any(m.cls is InferenceRoutes for m in app.user_middleware)


def test_other_methods_fall_through_to_the_router(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path)), base_url="http://localhost") as client:
        got = client.get("/v1/chat/completions")
        assert got.status_code == 405 and "error" in got.json()
        ollama = client.put("/api/chat")
        assert ollama.status_code == 405 and "error" in ollama.json()


def test_errors_keep_each_dialect_and_the_route_label(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path)), base_url="http://localhost") as client:
        openai = client.post("/v1/chat/completions", content=b"{not json")
        assert openai.status_code == 400 and openai.json()["error"]["type"] == "invalid_request_error"
        ollama = client.post("/api/chat", json={"model": "nope", "messages": []})
        assert ollama.status_code == 404 and isinstance(ollama.json()["error"], str)
        typed = client.post("/v1/embeddings", json={"model": "all-minilm:l6-v2", "input": 3})
        assert typed.status_code == 400 and typed.json()["error"]["param"] == "input"
        metrics = client.get("/metrics").text
    assert 'route="/v1/chat/completions"' in metrics and 'route="/api/chat"' in metrics
