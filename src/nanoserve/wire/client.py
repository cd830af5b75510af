"""The gateway's HTTP client for one worker (aiohttp: ~0.5 ms a request on loopback, where
httpx's async client measured 1-4 ms here; the gateway's own overhead budget is 1 ms).

A worker's address is a base URL, or ``unix:PATH`` for a worker listening on a Unix socket
(our own workers on this machine: ``handles/local.py``), which have a leaner client of their own
(``unixclient.py``).

Transport failures are mapped into the exception tree: ``WorkerConnectFailed`` when nothing was
sent (safe to retry on a fresh worker), ``WorkerUnavailable`` when a response broke off.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from nanoserve.errors import WorkerUnavailable
from nanoserve.wire.headers import JSON_HEADERS


class WorkerConnectFailed(WorkerUnavailable):
    """The worker did not accept the connection: the request was not sent."""


def plain(exc: BaseException) -> str:
    """What went wrong, in plain words (clients see it in error events): not the HTTP library's
    class names and messages ("TransferEncodingError: 400, message='Not enough data ...'")."""
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the worker's connection closed in the middle of its answer"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the worker closed the connection without answering"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"the connection was refused ({exc.os_error.strerror or 'no answer'})"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"the connection to the worker was lost ({exc.strerror or 'network error'})"
    if isinstance(exc, (aiohttp.ServerTimeoutError, TimeoutError)):
        return "the worker did not answer in time"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"the worker sent a malformed response (HTTP {exc.status})"
    return "the connection to the worker failed"


class WorkerResponse:
    """A worker's response, body not yet read. Close it (or read it fully) exactly once."""

    __slots__ = ("_resp", "status_code")

    def __init__(self, resp: aiohttp.ClientResponse):
        self._resp = resp
        self.status_code = resp.status

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except aiohttp.ClientError as exc:
            raise WorkerUnavailable(f"the worker's response broke off: {plain(exc)}") from exc
        finally:
            self._resp.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (for byte relays)."""
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise WorkerUnavailable(f"the worker's stream broke off: {plain(exc)}") from exc

    def close(self) -> None:
        self._resp.close()


# Idle pooled connections are closed by this side first: the worker keeps them open longer
# (worker/main.py, WORKER_KEEPALIVE_SECONDS). The other way round, a request sent on a connection
# the worker had just timed out failed with "Can not write request body".
KEEPALIVE_SECONDS = 60.0
UNIX_PREFIX = "unix:"


def unix_path(address: str) -> str | None:
    """The socket path of a ``unix:PATH`` address, None for a URL."""
    return address.removeprefix(UNIX_PREFIX) if address.startswith(UNIX_PREFIX) else None


class WorkerClient:
    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None):
        """``base_url``: the worker's address (a URL or ``unix:PATH``); ``headers`` go with every
        request (a cluster worker's secret)."""
        self.base_url = base_url
        self._headers = dict(headers or {})
        self._open: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()  # bodies being read
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: needs the running loop
            path = unix_path(self.base_url)
            connector: aiohttp.BaseConnector = (
                aiohttp.UnixConnector(path, limit=0, keepalive_timeout=KEEPALIVE_SECONDS)
                if path is not None
                else aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS)
            )
            self._session = aiohttp.ClientSession(
                "http://localhost" if path is not None else self.base_url,
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                headers=self._headers,
                # a relay, not a browser: no cookies kept or sent, no compressed answers asked for
                # (the relay passes bytes on as they come): -0.07 ms a request (overhead.py A/B)
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Accept", "Accept-Encoding"),
            )
        return self._session

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> WorkerResponse:
        """``headers`` are added to the JSON content type (trace context, when tracing is on)."""
        try:
            resp = await self.session.post(
                path, data=body, headers={**JSON_HEADERS, **headers} if headers else JSON_HEADERS
            )
        except aiohttp.ClientConnectorError as exc:
            raise WorkerConnectFailed(
                f"cannot connect to the worker at {self.base_url}: {plain(exc)}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise WorkerUnavailable(f"the worker at {self.base_url} failed: {plain(exc)}") from exc
        self._open.add(resp)
        return WorkerResponse(resp)

    async def get_json(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        """Status and JSON body of a GET (raises WorkerUnavailable on transport errors)."""
        try:
            async with self.session.get(path, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WorkerUnavailable(
                f"the worker at {self.base_url} did not answer {path}: {plain(exc)}"
            ) from exc
        except ValueError as exc:
            raise WorkerUnavailable(f"the worker at {self.base_url} sent invalid JSON for {path}") from exc

    async def close(self) -> None:
        """Close the connections. A body still being read fails at once: aiohttp would leave its
        reader waiting forever (a worker on another node declared dead before its socket closed)."""
        for resp in list(self._open):
            if not resp.content.is_eof():
                resp.content.set_exception(
                    aiohttp.ClientConnectionError("the connection to the worker was closed")
                )
        self._open.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
