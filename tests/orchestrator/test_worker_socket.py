"""Our own workers listen on a Unix socket in a directory only the gateway's user can enter."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.gateway import Gateway, wait_until, worker_client


def replica_address(gw: Gateway, model: str) -> str:
    with gw.client() as http:
        status = http.get("/models/status").json()
    return next(m for m in status["models"] if m["id"] == model)["replicas"][0]["address"]


def test_a_worker_listens_on_a_private_unix_socket_removed_when_it_stops(mock_gateway: Gateway) -> None:
    with mock_gateway.client() as http:
        assert http.post("/models/load", json={"model": "mock-chat"}).status_code == 200
    address = replica_address(mock_gateway, "mock-chat")
    assert address.startswith("unix:")
    path = Path(address.removeprefix("unix:"))
    assert stat.S_ISSOCK(path.stat().st_mode)
    folder = path.parent.stat()
    assert stat.S_IMODE(folder.st_mode) == 0o700 and folder.st_uid == os.getuid()
    with worker_client(address) as worker:
        assert worker.get("/health").status_code == 200

    with mock_gateway.client() as http:
        assert http.post("/models/unload", json={"model": "mock-chat"}).status_code == 200
    assert wait_until(lambda: not path.exists(), timeout=10)
