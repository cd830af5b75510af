"""One real gateway for the MCP tests, with the built-in default models (real weights):
smollm2:135m answers, all-minilm:l6-v2 embeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from gateway import Gateway
from mcp_helpers import MANUALS, call, in_memory, new_collection

RAG_CONFIG = {"max_tokens": 24}  # answers stay short: generation on 2 CPU cores is the slow part


@pytest.fixture(scope="session")
def mcp_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("mcp-gw"), {"rag": RAG_CONFIG}, start_timeout=120)
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
