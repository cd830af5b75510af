"""Helpers of the MCP tests: call tools through the official client and read their results."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway import Gateway
from mcp import Client
from mcp.shared.dispatcher import ProgressFnT

from nanoserve.mcp.client import GatewayClient
from nanoserve.mcp.server import create_mcp_server

DATA = Path(__file__).parent / "data"
MANUALS = DATA / "manuals"

TOOLS = {
    "query", "ingest", "feedback", "document_values", "list_collections", "observability", "models_status",
    "load_model", "unload_model", "nano_llm_query", "nano_llm_observability", "nano_llm_node_values",
}  # fmt: skip


@asynccontextmanager
async def in_memory(gateway: Gateway, *, allow_paths: bool = True) -> AsyncIterator[Client]:
    """The official client connected in memory to an MCP server that forwards to ``gateway``."""
    async with (
        GatewayClient(gateway.url) as rest,
        Client(create_mcp_server(rest, allow_paths=allow_paths)) as client,
    ):
        yield client


async def read_json(client: Client, uri: str) -> Any:
    contents = (await client.read_resource(uri)).contents
    assert len(contents) == 1 and contents[0].mime_type == "application/json"
    return json.loads(contents[0].text)  # type: ignore[union-attr]


def new_collection() -> str:
    return "mcp-" + uuid.uuid4().hex[:10]


async def call(
    client: Client, tool: str, arguments: dict[str, Any] | None = None, progress: ProgressFnT | None = None
) -> dict[str, Any]:
    """A tool's structured result; fails the test with the tool's message if it is an error."""
    result = await client.call_tool(tool, arguments or {}, progress_callback=progress)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert not result.is_error, f"{tool} failed: {text}"
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> str:
    """The message of a tool call that must fail as an MCP tool error (not a protocol error)."""
    result = await client.call_tool(tool, arguments or {})
    assert result.is_error, f"{tool} {arguments} should have failed: {result.structured_content}"
    assert result.structured_content is None
    return " ".join(getattr(c, "text", "") for c in result.content)
