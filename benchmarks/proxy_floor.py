"""The floor of the gateway's stack: a bare ASGI app on uvicorn (uvloop, httptools) that relays
each request to one worker with an aiohttp client, the same libraries the gateway uses, with no
routing, validation, middleware, admission, logging or metrics. ``overhead.py --floor URL``
measures it beside the gateway: the difference is what the gateway's own layers cost.

    python benchmarks/proxy_floor.py --port 8002 --worker http://127.0.0.1:8100
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import aiohttp
import uvicorn
from starlette.types import Receive, Scope, Send


class Relay:
    def __init__(self, worker: str):
        self.worker = worker
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if self.session is not None:
                await self.session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.session is None:
            self.session = aiohttp.ClientSession(self.worker, connector=aiohttp.TCPConnector(limit=0))
        headers = {"content-type": "application/json"}
        async with self.session.request(
            scope["method"], scope["path"], data=body, headers=headers
        ) as upstream:
            answer = await upstream.read()
            start = {"type": "http.response.start", "status": upstream.status}
            await send({**start, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": answer})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--worker", required=True, help="worker URL")
    args = parser.parse_args(argv)
    uvicorn.run(Relay(args.worker), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
