"""``/mcp`` in the gateway: mounted by create_app, with Host/Origin checks against DNS rebinding
that accept loopback names and the configured host."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nanoserve.api.app import create_app
from nanoserve.auth.hosts import LOOPBACK, allowed_hosts
from nanoserve.config import Settings
from nanoserve.mcp.mount import McpEndpoint

LOCAL = "http://localhost:8123"  # the gateway refuses TestClient's default Host, "testserver"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.mark.parametrize(
    ("bind", "local", "expected"),
    [
        ("127.0.0.1", ["box", "10.1.2.3"], []),  # bound to loopback: loopback names only
        ("localhost", [], []),
        ("::1", [], []),
        ("nano.lan", ["box"], ["nano.lan"]),
        ("10.1.2.3", [], ["10.1.2.3"]),
        ("2001:db8::5", [], ["[2001:db8::5]"]),
        ("Nano.LAN", [], ["nano.lan"]),
        # every interface: this machine's names and addresses, IPv6 bracketed and without a zone
        (
            "0.0.0.0",
            ["box", "10.1.2.3", "127.0.0.1", "fe80::1%eth0", "::1"],
            ["box", "10.1.2.3", "[fe80::1]"],
        ),
        ("::", ["box"], ["box"]),
    ],
)
def test_allowed_hosts(bind: str, local: list[str], expected: list[str]) -> None:
    assert allowed_hosts(bind, local) == [*LOOPBACK, *expected]


def post_initialize(client: TestClient, **headers: str) -> Any:
    return client.post("/mcp", json=INITIALIZE, headers={**ACCEPT, **headers})


def test_mcp_is_mounted_with_dns_rebinding_checks(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, port=8123)), base_url=LOCAL) as client:
        for host in ("127.0.0.1:8123", "localhost:8123", "[::1]:8123", "localhost"):
            response = post_initialize(client, Host=host)
            assert response.status_code == 200, (host, response.text)
            assert response.headers["mcp-session-id"]
            assert '"serverInfo":{"name":"nanoserve"' in response.text
        ok_origin = post_initialize(client, Host="127.0.0.1:8123", Origin="http://localhost:8123")
        assert ok_origin.status_code == 200

        # the gateway's gate refuses them before the SDK's own check (tests/auth has every route)
        rebound = post_initialize(client, Host="attacker.example:8123")
        assert rebound.status_code == 421
        assert rebound.json()["error"]["code"] == "host_not_allowed"
        cross_site = post_initialize(client, Host="127.0.0.1:8123", Origin="http://attacker.example")
        assert cross_site.status_code == 403
        lookalike = post_initialize(client, Host="127.0.0.1.attacker.example:8123")
        assert lookalike.status_code == 421
        other_app = post_initialize(client, Host="127.0.0.1:8123", Origin="http://localhost:3000")
        assert other_app.status_code == 403  # another local app's page


def test_configured_host_is_accepted(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, host="nano.lan", port=8123))) as client:
        assert post_initialize(client, Host="nano.lan:8123").status_code == 200
        assert post_initialize(client, Host="other.lan:8123").status_code == 421


def test_wildcard_bind_accepts_this_machines_name(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, host="0.0.0.0", port=8123))) as client:
        assert post_initialize(client, Host=f"{socket.gethostname().lower()}:8123").status_code == 200
        assert post_initialize(client, Host="attacker.example:8123").status_code == 421


def test_a_server_that_cannot_start_answers_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: McpEndpoint, client: object) -> None:
        raise ImportError("No module named 'mcp'")

    monkeypatch.setattr(McpEndpoint, "_build", broken)
    with TestClient(create_app(Settings(data_dir=tmp_path, port=8123)), base_url=LOCAL) as client:
        response = post_initialize(client, Host="127.0.0.1:8123")
        assert response.status_code == 503
        assert response.text == "The MCP server could not start: No module named 'mcp'"
        assert client.get("/health").status_code == 200  # the gateway itself serves on
