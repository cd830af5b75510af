"""Closing a worker's client fails the streams still being read from it.

The owner closes the client of a worker it has declared dead (a Ray node gone, a remote upstream
unresponsive) possibly before the worker's socket closes; aiohttp alone would leave the reader of
a body in flight waiting forever.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from nanoserve.errors import WorkerUnavailable
from nanoserve.wire.client import WorkerClient


async def endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    while True:
        await response.write(b"data: {}\n\n")
        await asyncio.sleep(0.05)


async def test_close_fails_a_body_being_read() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", endless)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = WorkerClient(f"http://127.0.0.1:{port}")
    try:
        response = await client.post("/v1/chat/completions", b"{}")
        read = 0
        with pytest.raises(WorkerUnavailable, match="broke off"):
            async with asyncio.timeout(10):
                async for _ in response.chunks():
                    read += 1
                    if read == 3:
                        asyncio.get_running_loop().create_task(client.close())
        assert read >= 3
    finally:
        await client.close()
        await runner.cleanup()
