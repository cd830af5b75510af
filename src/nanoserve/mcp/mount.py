"""The MCP server mounted in the gateway at ``/mcp`` (streamable HTTP).

The tools call the gateway's REST API on its own loopback URL, exactly as ``nanoserve mcp`` calls
it from outside: one implementation for both transports. ``create_app`` adds ``endpoint.route``
(``/mcp``, every method) and runs ``endpoint.running()`` in its lifespan.

Startup: the MCP SDK takes about 1.5 s to import (its protocol types are three versions of
pydantic models), which would delay every gateway start. So ``running()`` builds the server in
the background after the gateway is up (the import in a worker thread) and then runs the SDK's
session manager; a request that arrives before that waits for it.

DNS rebinding: the gateway checks Host and Origin on every route (``nanoserve.auth``); the SDK's
own check is given the same names (``auth/hosts.py``), a second lock on the same door.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nanoserve.api.rag import gateway_url
from nanoserve.auth.hosts import ANY, WILDCARDS, allowed_hosts, machine_addresses
from nanoserve.config import Settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    from nanoserve.mcp.client import GatewayClient

log = logging.getLogger("nanoserve.mcp")

PATH = "/mcp"
START_TIMEOUT = 60.0  # seconds a request waits for the MCP server to be built


def transport_security(hosts: Iterable[str]) -> TransportSecuritySettings:
    """Host patterns with and without a port; Origins over http and https."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = list(hosts)
    patterns = [pattern for h in hosts for pattern in (h, f"{h}:*")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=ANY not in hosts,
        allowed_hosts=patterns,
        allowed_origins=[f"{scheme}://{p}" for scheme in ("http", "https") for p in patterns],
    )


class McpEndpoint:
    """The gateway's ``/mcp``: an ASGI app (served by ``route``) and the context that must run
    around it."""

    def __init__(self, settings: Settings):
        self.url = gateway_url(settings)
        local = machine_addresses() if settings.host in WILDCARDS else []
        self.hosts = allowed_hosts(settings.host, local, settings.allowed_hosts)
        self.max_body_bytes = settings.max_body_bytes
        self.verify = not settings.tls.enabled  # its own certificate, on loopback
        self.route = Route(PATH, self, include_in_schema=False)  # an ASGI app: every method
        self._app: asyncio.Future[ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            response = PlainTextResponse("The MCP server is not running", status_code=503)
            return await response(scope, receive, send)
        try:
            app = await asyncio.wait_for(asyncio.shield(self._app), START_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the build failed or is stuck: say so, do not crash
            message = f"The MCP server could not start: {exc or type(exc).__name__}"
            return await PlainTextResponse(message, status_code=503)(scope, receive, send)
        await app(scope, receive, send)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Build the server in the background, serve it until the gateway stops."""
        self._app = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(self._serve(self._app, stop), name="mcp-server")
        try:
            yield
        finally:
            stop.set()
            await task

    async def _serve(self, ready: asyncio.Future[ASGIApp], stop: asyncio.Event) -> None:
        from nanoserve.mcp.client import GatewayClient

        client = GatewayClient(self.url, verify=self.verify)
        try:
            server, app = await asyncio.to_thread(self._build, client)
            async with server.session_manager.run():
                ready.set_result(app)
                await stop.wait()
        except Exception as exc:
            log.exception("the MCP server at %s failed", PATH)
            _fail(ready, exc)
        finally:
            _fail(ready, RuntimeError("the gateway is shutting down"))
            await client.aclose()

    def _build(self, client: GatewayClient) -> tuple[MCPServer, ASGIApp]:
        """Import the SDK and build the server (blocking: runs in a worker thread)."""
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

        from nanoserve.mcp.server import create_mcp_server

        server = create_mcp_server(client, allow_paths=False)
        server.streamable_http_app(  # creates the session manager that the app below serves
            streamable_http_path=PATH,
            transport_security=transport_security(self.hosts),
            max_request_body_size=self.max_body_bytes,
        )
        return server, StreamableHTTPASGIApp(server.session_manager)


def _fail(ready: asyncio.Future[ASGIApp], exc: BaseException) -> None:
    if not ready.done():
        ready.set_exception(exc)
        ready.exception()  # retrieved: waiting requests get it, nobody else needs to
