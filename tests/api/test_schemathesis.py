"""Every operation of /openapi.json fuzzed by schemathesis on a dedicated gateway with mock
engines: no 5xx, every status and content type documented, every response matching its schema.
Bounded to about 1.5 minutes here; ``benchmarks/schemathesis.sh`` runs longer."""

from __future__ import annotations

import json

import pytest

from nanoserve.api.app import create_app
from nanoserve.config import Settings
from tests.api.fuzz import fuzz

pytest.importorskip("schemathesis")


BODYLESS = {"/api/blobs/{digest}", "/mcp", "/admin/reload"}  # POSTs that read no JSON body


def test_openapi_types_every_operation() -> None:
    doc = create_app(Settings(models=[])).openapi()
    paths = doc["paths"]
    assert "/metrics" in paths and "/mcp" in paths
    for path, methods in paths.items():
        for method, op in methods.items():
            assert "422" not in op["responses"], (method, path)
            if method in ("post", "put") and path not in BODYLESS:
                assert "requestBody" in op, (method, path)
            errors = [code for code in op["responses"] if code.startswith("4")]
            schema = json.dumps([op["responses"][c] for c in errors])
            if errors and path != "/mcp":
                dialect = "OllamaError" if path.startswith("/api/") else "OpenAIError"
                assert dialect in schema, (method, path)


def test_schemathesis_finds_nothing() -> None:
    result = fuzz(max_examples=25, timeout=400)
    assert result.operations >= 38, result.output[-3000:]
    assert result.returncode == 0 and result.failures == 0, result.output[-8000:]
