"""The MCP server mounted in the gateway at ``/mcp`` (streamable HTTP).

The tools call the gateway's REST API on its own loopback URL, exactly as ``nanoserve mcp`` calls
it from outside: one implementation for both transports. ``create_app`` adds ``endpoint.route``
(``/mcp``, every method) and runs ``endpoint.running()`` in its lifespan (Starlette does not run
a mounted app's own lifespan).

DNS rebinding: a web page must not reach a local MCP server through a hostname it controls, so
the Host header must name this machine: a loopback name, the configured ``host``, or, when bound
to every interface (0.0.0.0 / ::), one of this machine's addresses or its hostname. A browser's
Origin, when sent, must be one of those too. Clients that send no Origin (every non-browser MCP
client) are not affected.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import psutil
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route

from nanoserve.api.rag import gateway_url
from nanoserve.config import Settings
from nanoserve.mcp.client import GatewayClient
from nanoserve.mcp.server import create_mcp_server

PATH = "/mcp"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "[::]", "", "*")


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
    """The gateway's ``/mcp``: an ASGI app and the context that must run around it."""

    def __init__(self, settings: Settings):
        self.client = GatewayClient(gateway_url(settings))
        self.server = create_mcp_server(self.client, allow_paths=False)
        local = machine_addresses() if settings.host in WILDCARDS else []
        self.hosts = allowed_hosts(settings.host, local)
        self.server.streamable_http_app(  # builds the session manager the route below serves
            streamable_http_path=PATH,
            transport_security=transport_security(self.hosts),
            max_request_body_size=settings.max_body_bytes,
        )
        self.route = Route(PATH, StreamableHTTPASGIApp(self.server.session_manager), include_in_schema=False)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            async with self.server.session_manager.run():
                yield
        finally:
            await self.client.aclose()
