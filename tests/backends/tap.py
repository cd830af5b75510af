"""A recording proxy on a free loopback port: what the gateway really sends to an upstream.

Forwards every request to ``target`` and streams the answer back, recording each request's
path, ``Authorization`` header and body, and the most requests it ever had in flight at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from gateway import free_port
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


@dataclass
class Seen:
    path: str
    authorization: str | None
    body: dict[str, Any] | None


@dataclass
class Tap:
    target: str
    port: int = field(default_factory=free_port)
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0  # requests (POST) being answered; the gateway's health probes (GET) do not count
    max_in_flight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.seen.append(Seen(request.url.path, request.headers.get("authorization"), body))
        counted = int(request.method == "POST")
        self.in_flight += counted
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        client = httpx.AsyncClient(base_url=self.target, timeout=120)
        try:
            upstream = await client.send(
                client.build_request(
                    request.method,
                    request.url.path,
                    content=raw,
                    headers={"content-type": request.headers.get("content-type", "application/json")},
                ),
                stream=True,
            )
        except httpx.TransportError:
            self.in_flight -= counted
            await client.aclose()
            raise

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                self.in_flight -= counted
                await upstream.aclose()
                await client.aclose()

        headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "retry-after")}
        response = StreamingResponse(relay(), status_code=upstream.status_code, headers=headers)
        await response(scope, receive, send)

    def start(self) -> Tap:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
