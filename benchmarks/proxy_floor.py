"""The floor of the gateway's stack: a bare ASGI app on uvicorn (uvloop, httptools) that relays
each request to one worker with an aiohttp client, the same libraries the gateway uses, with no
routing, validation, middleware, admission, logging or metrics. ``overhead.py --floor URL``
measures it beside the gateway: the difference is what the gateway's own layers cost.

    python benchmarks/proxy_floor.py --port 8002 --worker http://127.0.0.1:8100

``--client streams`` relays with asyncio's own streams instead, over one kept-alive connection
and a hand-written HTTP/1.1 request (responses with a content-length only): what a minimal
client for the worker hop would save against aiohttp's.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp
import uvicorn
from starlette.types import Receive, Scope, Send


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def lifespan(receive: Receive, send: Send) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


class Relay:
    def __init__(self, worker: str):
        self.worker = worker
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            if self.session is not None:
                await self.session.close()
            return
        body = await read_body(receive)
        if self.session is None:
            self.session = aiohttp.ClientSession(self.worker, connector=aiohttp.TCPConnector(limit=0))
        headers = {"content-type": "application/json"}
        async with self.session.request(
            scope["method"], scope["path"], data=body, headers=headers
        ) as upstream:
            await answer(send, upstream.status, await upstream.read())


class StreamsRelay:
    """The same relay over asyncio streams: one connection, requests one at a time (the benchmark
    is sequential)."""

    def __init__(self, worker: str):
        url = urlsplit(worker)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        if self.connection is None:
            self.connection = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.connection
        head = f"{scope['method']} {scope['path']} HTTP/1.1\r\nhost: {self.host}\r\n"
        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        length = next(int(line[15:]) for line in lines if line.lower().startswith(b"content-length:"))
        await answer(send, int(lines[0].split()[1]), await reader.readexactly(length))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--worker", required=True, help="worker URL")
    parser.add_argument("--client", choices=("aiohttp", "streams"), default="aiohttp")
    args = parser.parse_args(argv)
    relay = Relay(args.worker) if args.client == "aiohttp" else StreamsRelay(args.worker)
    uvicorn.run(relay, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
