"""The gateway's client for its own workers on this machine: HTTP/1.1 over their Unix sockets.

A worker the gateway started listens on a Unix socket (``orchestrator/handles/local.py``) and is
a known peer: uvicorn, JSON requests, answers with a content length or chunked. For that hop this
client replaces aiohttp's general one with an ``asyncio.Protocol`` per connection and httptools'
response parser (uvicorn's own, so already installed): no session, cookie, redirect, tracing or
timer machinery per request. ``benchmarks/proxy_floor.py --client streams`` shows what the
machinery costs: 0.13-0.17 ms of a bare relay's 0.37-0.40 ms per request here. Remote backends
(TCP, TLS, other servers) keep aiohttp (``client.py``).

Connections are kept alive and reused last-in first-out, dropped after ``KEEPALIVE_SECONDS``
idle (the worker keeps them longer, so it never closes one under a request). A connection goes
back to the pool only once its response was read to the end; a response closed early closes its
connection. Errors are the same as ``WorkerClient``'s: ``WorkerConnectFailed`` when nothing was
sent, ``WorkerUnavailable`` when an answer broke off.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import httptools

from nanoserve.errors import WorkerUnavailable
from nanoserve.wire.client import (
    KEEPALIVE_SECONDS,
    WorkerClient,
    WorkerConnectFailed,
    WorkerResponse,
    unix_path,
)
from nanoserve.wire.headers import JSON_HEADERS

CONNECT_TIMEOUT = 5.0


class _Connection(asyncio.Protocol):
    """One connection to the worker and the response being read on it (one at a time)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.lost = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.body: list[bytes] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.error: str | None = None
        self._waiter: asyncio.Future[None] | None = None

    def send(self, data: bytes) -> None:
        self._reset()
        assert self.transport is not None
        self.transport.write(data)

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.lost

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait(self) -> None:
        """Until the next event: the headers, more of the body, the end, or a broken connection
        (at once if the response ended or broke already)."""
        if self.complete or self.error is not None:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.error = "the worker sent a malformed response"
            self.close()
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.complete and self.error is None:
            self.error = (
                "the worker's connection closed in the middle of its answer"
                if self.headers_done
                else "the worker closed the connection without answering"
            )
        self._wake()

    # -- httptools callbacks ---------------------------------------------------------------
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # (reset once this returns)
        self.complete = True
        self._wake()


class UnixResponse(WorkerResponse):
    """A worker's response read off its connection; ``close()`` (or reading it all) exactly once."""

    __slots__ = ("_client", "_conn")

    def __init__(self, client: UnixWorkerClient, conn: _Connection):
        self._client = client
        self._conn: _Connection | None = conn  # None once handed back
        self.status_code = conn.status

    async def read(self) -> bytes:
        conn = self._live()
        try:
            while not conn.complete:
                if conn.error is not None:
                    raise WorkerUnavailable(f"the worker's response broke off: {conn.error}")
                await conn.wait()
            body, conn.body = b"".join(conn.body), []
            return body
        finally:
            self.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._live()
        while True:
            if conn.body:
                body, conn.body = conn.body, []
                yield body[0] if len(body) == 1 else b"".join(body)
                continue
            if conn.complete:
                self.close()
                return
            if conn.error is not None:
                raise WorkerUnavailable(f"the worker's stream broke off: {conn.error}")
            await conn.wait()

    def _live(self) -> _Connection:
        if self._conn is None:
            raise WorkerUnavailable("the worker's response was already closed")
        return self._conn

    def close(self) -> None:
        """Hand the connection back once: to the pool if the body was read to the end, else it
        closes (a reader still waiting on it fails). A second call does nothing, even after the
        connection went on to serve another request."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client.release(conn)


class UnixWorkerClient(WorkerClient):
    """``WorkerClient`` for ``unix:PATH`` addresses (see the module's docstring)."""

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None):
        super().__init__(base_url, headers)
        path = unix_path(base_url)
        if path is None:
            raise ValueError(f"not a unix:PATH address: {base_url!r}")
        self._path = path
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        extra = "".join(f"{name}: {value}\r\n" for name, value in {**JSON_HEADERS, **self._headers}.items())
        self._fixed_headers = "host: localhost\r\n" + extra

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.lost and now - conn.idle_since < KEEPALIVE_SECONDS:
                self._busy.add(conn)
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, conn = await loop.create_unix_connection(_Connection, self._path)
        except (OSError, TimeoutError) as exc:
            reason = getattr(exc, "strerror", None) or "no answer"
            raise WorkerConnectFailed(
                f"cannot connect to the worker at {self.base_url}: the connection was refused ({reason})"
            ) from exc
        self._busy.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        """Back to the pool if its response was read to the end, else closed (idempotent)."""
        if conn not in self._busy:
            return
        self._busy.discard(conn)
        if conn.reusable:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    async def _request(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None
    ) -> UnixResponse:
        conn = await self._connection()
        head = f"{method} {path} HTTP/1.1\r\n{self._fixed_headers}content-length: {len(body)}\r\n"
        if headers:
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        try:
            conn.send(head.encode() + b"\r\n" + body)
            while not conn.headers_done:
                if conn.error is not None:
                    raise WorkerUnavailable(f"the worker at {self.base_url} failed: {conn.error}")
                await conn.wait()
        except BaseException:
            self.release(conn)
            raise
        return UnixResponse(self, conn)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> WorkerResponse:
        return await self._request("POST", path, body, headers)

    async def get_json(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        try:
            async with asyncio.timeout(timeout):
                response = await self._request("GET", path, b"", None)
                body = await response.read()
        except TimeoutError as exc:
            raise WorkerUnavailable(
                f"the worker at {self.base_url} did not answer {path}: the worker did not answer in time"
            ) from exc
        except WorkerUnavailable as exc:
            raise WorkerUnavailable(
                f"the worker at {self.base_url} did not answer {path}: {exc.message}"
            ) from exc
        try:
            return response.status_code, json.loads(body)
        except ValueError as exc:
            raise WorkerUnavailable(f"the worker at {self.base_url} sent invalid JSON for {path}") from exc

    async def close(self) -> None:
        """Close every connection; a body still being read fails at once."""
        for conn in [*self._idle, *self._busy]:
            conn.close()
        self._idle.clear()
        self._busy.clear()
