"""The gateway's client for its own workers over Unix sockets (wire/unixclient.py), against a
real HTTP server on a Unix socket: reuse, streaming, and every way an answer can break off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from nanoserve.errors import WorkerUnavailable
from nanoserve.wire.client import WorkerConnectFailed
from nanoserve.wire.unixclient import UnixWorkerClient


class Server:
    def __init__(self) -> None:
        self.peers: set[object] = set()  # connections seen (one per transport)
        self.requests: list[tuple[str, bytes, str | None]] = []

    async def echo(self, request: web.Request) -> web.Response:
        self.peers.add(request.transport)
        self.requests.append((request.path, await request.read(), request.headers.get("x-extra")))
        return web.json_response({"path": request.path, "n": len(self.requests)})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(3):
            await response.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        while True:
            await response.write(b"data: {}\n\n")
            await asyncio.sleep(0.02)

    async def cut(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"data: 1\n\n")
        assert request.transport is not None
        request.transport.close()  # mid-body
        return response

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[tuple[Server, str]]:
    server = Server()
    app = web.Application()
    app.router.add_post("/echo", server.echo)
    app.router.add_get("/echo", server.echo)
    app.router.add_post("/stream", server.stream)
    app.router.add_post("/endless", server.endless)
    app.router.add_post("/cut", server.cut)
    app.router.add_get("/slow", server.slow)
    runner = web.AppRunner(app)
    await runner.setup()
    path = str(tmp_path / "w.sock")
    site = web.UnixSite(runner, path)
    await site.start()
    try:
        yield server, f"unix:{path}"
    finally:
        await runner.cleanup()


async def test_requests_reuse_one_connection(worker: tuple[Server, str]) -> None:
    server, address = worker
    client = UnixWorkerClient(address)
    try:
        for i in range(3):
            response = await client.post("/echo", b'{"i": %d}' % i, headers={"x-extra": "yes"})
            assert response.status_code == 200
            assert b'"path": "/echo"' in await response.read()
        status, body = await client.get_json("/echo")
        assert status == 200 and body["n"] == 4
    finally:
        await client.close()
    assert [r[1] for r in server.requests[:3]] == [b'{"i": 0}', b'{"i": 1}', b'{"i": 2}']
    assert server.requests[0][2] == "yes"
    assert len(server.peers) == 1


async def test_a_stream_arrives_piece_by_piece(worker: tuple[Server, str]) -> None:
    _, address = worker
    client = UnixWorkerClient(address)
    try:
        response = await client.post("/stream", b"{}")
        pieces = [piece async for piece in response.chunks()]
        assert b"".join(pieces) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert len(pieces) >= 2  # not buffered to the end
        assert (await client.get_json("/echo"))[0] == 200  # the connection went back to the pool
    finally:
        await client.close()


async def test_a_response_closed_early_does_not_go_back_to_the_pool(worker: tuple[Server, str]) -> None:
    server, address = worker
    client = UnixWorkerClient(address)
    try:
        response = await client.post("/endless", b"{}")
        async for _ in response.chunks():
            break
        response.close()
        await client.get_json("/echo")
        await client.get_json("/echo")
    finally:
        await client.close()
    assert len(server.peers) == 1  # both GETs on one new connection, not the endless one


async def test_close_fails_a_body_being_read(worker: tuple[Server, str]) -> None:
    _, address = worker
    client = UnixWorkerClient(address)
    response = await client.post("/endless", b"{}")
    read = 0
    with pytest.raises(WorkerUnavailable, match="broke off"):
        async with asyncio.timeout(10):
            async for _ in response.chunks():
                read += 1
                if read == 3:
                    asyncio.get_running_loop().create_task(client.close())
    assert read >= 3


async def test_a_body_cut_off_is_a_worker_unavailable(worker: tuple[Server, str]) -> None:
    _, address = worker
    client = UnixWorkerClient(address)
    try:
        response = await client.post("/cut", b"{}")
        with pytest.raises(WorkerUnavailable, match="in the middle of its answer"):
            async for _ in response.chunks():
                pass
    finally:
        await client.close()


async def test_nothing_listening_is_a_connect_failure(tmp_path: Path) -> None:
    client = UnixWorkerClient(f"unix:{tmp_path / 'none.sock'}")
    with pytest.raises(WorkerConnectFailed, match="cannot connect"):
        await client.post("/echo", b"{}")
    await client.close()


async def test_get_json_gives_up_at_its_timeout(worker: tuple[Server, str]) -> None:
    _, address = worker
    client = UnixWorkerClient(address)
    try:
        with pytest.raises(WorkerUnavailable, match="did not answer /slow"):
            await client.get_json("/slow", timeout=0.2)
        assert (await client.get_json("/echo"))[0] == 200
    finally:
        await client.close()


async def test_closing_a_response_twice_leaves_the_next_request_alone(worker: tuple[Server, str]) -> None:
    """The first answer's owner closes it again after its connection went on to the next request
    (the gateway reads a body, then finishes the request: two hand-backs)."""
    _, address = worker
    client = UnixWorkerClient(address)
    try:
        first = await client.post("/echo", b"{}")
        await first.read()  # hands the connection back
        second = await client.post("/stream", b"{}")  # on the same connection
        first.close()  # late: must not close the connection under the second
        assert b"".join([piece async for piece in second.chunks()]).count(b"data:") == 3
    finally:
        await client.close()
