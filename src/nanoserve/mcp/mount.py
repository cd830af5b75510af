"""The MCP server mounted in the gateway at ``/mcp`` (streamable HTTP).

The tools call the gateway's REST API on its own loopback URL, exactly as ``nanoserve mcp`` calls
it from outside: one implementation for both transports. ``create_app`` adds ``endpoint.route``
(``/mcp``, every method) and runs ``endpoint.running()`` in its lifespan.

Startup: the MCP SDK takes about 1.5 s to import (its protocol types are three versions of
pydantic models), which would delay every gateway start. So ``running()`` builds the server in
the background after the gateway is up (the import in a worker thread) and then runs the SDK's
session manager; a request that arrives before that waits for it.

DNS rebinding: a web page must not reach a local MCP server through a hostname it controls, so
the Host header must name this machine: a loopback name, the configured ``host``, or, when bound
to every interface (0.0.0.0 / ::), one of this machine's addresses or its hostname. A browser's
Origin, when sent, must be one of those too. Clients that send no Origin (every non-browser MCP
client) are not affected.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import psutil
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nanoserve.api.rag import gateway_url
from nanoserve.config import Settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    from nanoserve.mcp.client import GatewayClient

log = logging.getLogger("nanoserve.mcp")

PATH = "/mcp"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "[::]", "", "*")
START_TIMEOUT = 60.0  # seconds a request waits for the MCP server to be built


def _as_host(address: str) -> str:
    """An address as it appears in a Host header (IPv6 in brackets, without a zone)."""
    address = address.split("%", 1)[0]
    if ":" in address and not address.startswith("["):
        return f"[{address}]"
    return address


def allowed_hosts(bind_host: str, local_addresses: Iterable[str] = ()) -> list[str]:
    """The host names a request may use (pure): loopback, the bound host, and the machine's own
    addresses when bound to a wildcard."""
    names = list(LOOPBACK)
    extra = local_addresses if bind_host in WILDCARDS else [bind_host]
    for name in extra:
        host = _as_host(name.strip().lower())
        if host and host not in names:
            names.append(host)
    return names


def transport_security(hosts: Iterable[str]) -> TransportSecuritySettings:
    """Host patterns with and without a port; Origins over http and https."""
    from mcp.server.transport_security import TransportSecuritySettings

    patterns = [pattern for h in hosts for pattern in (h, f"{h}:*")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=patterns,
        allowed_origins=[f"{scheme}://{p}" for scheme in ("http", "https") for p in patterns],
    )


def machine_addresses() -> list[str]:
    """This machine's hostname and interface addresses (no DNS lookup)."""
    addresses = [socket.gethostname()]
    for interface in psutil.net_if_addrs().values():
        addresses += [a.address for a in interface if a.family in (socket.AF_INET, socket.AF_INET6)]
    return addresses


class McpEndpoint:
    """The gateway's ``/mcp``: an ASGI app (served by ``route``) and the context that must run
    around it."""

    def __init__(self, settings: Settings):
        self.url = gateway_url(settings)
        local = machine_addresses() if settings.host in WILDCARDS else []
        self.hosts = allowed_hosts(settings.host, local)
        self.max_body_bytes = settings.max_body_bytes
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

        client = GatewayClient(self.url)
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
