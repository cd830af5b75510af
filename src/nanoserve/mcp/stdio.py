"""``nanoserve mcp``: the MCP server over stdio, forwarding every tool call to a running gateway.

It starts no orchestrator and loads no model: it is a client of ``--url``, like ``nanoserve
ingest``, so a gateway that is down makes tools fail with a clear error, not the session.
"""

from __future__ import annotations

from nanoserve.mcp.client import GatewayClient
from nanoserve.mcp.server import create_mcp_server


async def serve_stdio(url: str, api_key: str | None = None) -> None:
    """Serve MCP on stdin/stdout until the client closes them."""
    async with GatewayClient(url, api_key=api_key) as client:
        await create_mcp_server(client, allow_paths=True).run_stdio_async()
