"""The MCP tools' only way to nanoserve: the gateway's REST API over HTTP.

One small async client with a base URL: over stdio it is ``nanoserve mcp --url``, mounted in the
gateway it is the gateway's own loopback URL. So both transports run the same code against the
same API as every other client, and the MCP server never reaches into the gateway's internals.

Errors come back as the exception tree: a 4xx/5xx body (OpenAI's ``{"error": {"message", ...}}``)
becomes the matching ``NanoserveError`` with the gateway's own message, a refused connection or a
timeout is ``Unavailable``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from nanoserve.errors import (
    BadRequest,
    Conflict,
    EngineError,
    InsufficientMemory,
    NanoserveError,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    Unavailable,
)

# Queries run the generation model on CPU and ingestion embeds every chunk: minutes, not seconds.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)

_BY_STATUS: dict[int, type[NanoserveError]] = {
    400: BadRequest,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: BadRequest,
    429: QueueFull,
    503: Unavailable,
    507: InsufficientMemory,
}


# The caller's credential headers, for the mounted /mcp: its tools call the REST API with the key
# that called /mcp (set by the server around each tool call and resource read).
_forwarded: ContextVar[Mapping[str, str] | None] = ContextVar("nanoserve_mcp_forwarded", default=None)
CREDENTIAL_HEADERS = ("authorization", "x-api-key")


@contextmanager
def forwarding(headers: Mapping[str, str]) -> Iterator[None]:
    """Calls made inside carry these credential headers (only ``CREDENTIAL_HEADERS`` are kept)."""
    kept = {name: headers[name] for name in CREDENTIAL_HEADERS if name in headers}
    token = _forwarded.set(kept)
    try:
        yield
    finally:
        _forwarded.reset(token)


class GatewayClient:
    """Typed calls to ``/v1/rag``, ``/models`` and ``/metrics`` of a running gateway."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        api_key: str | None = None,
        verify: bool = True,
    ):
        """``api_key``: sent as a bearer token (``nanoserve mcp --api-key``); inside ``forwarding``
        the caller's own credential is sent instead."""
        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else None
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers, verify=verify
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the pipeline (/v1/rag) ---

    async def list_collections(self) -> list[dict[str, Any]]:
        body = await self._json("GET", "/v1/rag/collections")
        return list(body.get("data", []))

    async def get_collection(self, name: str) -> dict[str, Any]:
        return await self._json("GET", f"/v1/rag/collections/{_segment(name)}")

    async def add_text(
        self, collection: str, name: str, text: str, *, fmt: str | None, source: str | None, title: str | None
    ) -> dict[str, Any]:
        body = {"name": name, "text": text, "format": fmt, "source": source, "title": title}
        payload = {k: v for k, v in body.items() if v is not None}
        return await self._json("POST", f"/v1/rag/collections/{_segment(collection)}/documents", json=payload)

    async def add_file(
        self,
        collection: str,
        name: str,
        data: bytes,
        *,
        fmt: str | None,
        source: str | None,
        title: str | None,
    ) -> dict[str, Any]:
        fields = {"name": name, "format": fmt, "source": source, "title": title}
        form = {k: v for k, v in fields.items() if v is not None}
        files = {"file": (Path(name).name, data)}
        return await self._json(
            "POST", f"/v1/rag/collections/{_segment(collection)}/documents", data=form, files=files
        )

    async def query(
        self, collection: str, query: str, *, top_k: int | None = None, strategy: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"collection": collection, "query": query}
        if top_k is not None:
            body["top_k"] = top_k
        if strategy is not None:
            body["strategy"] = strategy
        return await self._json("POST", "/v1/rag/query", json=body)

    async def trace(self, trace_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/v1/rag/traces/{_segment(trace_id)}")

    async def feedback(self, trace_id: str, rating: float) -> dict[str, Any]:
        return await self._json("POST", "/v1/rag/feedback", json={"trace_id": trace_id, "rating": rating})

    async def values(self, collection: str, limit: int) -> dict[str, Any]:
        return await self._json("GET", "/v1/rag/values", params={"collection": collection, "limit": limit})

    async def rag_metrics(self, collection: str | None = None) -> list[dict[str, Any]]:
        params = {"collection": collection} if collection else None
        body = await self._json("GET", "/v1/rag/metrics", params=params)
        return list(body.get("data", []))

    # --- serving: models and metrics ---

    async def models_status(self) -> dict[str, Any]:
        return await self._json("GET", "/models/status")

    async def load_model(
        self, model: str, *, priority: int | None, keep_alive: str | float | None, dry_run: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "dry_run": dry_run}
        if priority is not None:
            body["priority"] = priority
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        return await self._json("POST", "/models/load", json=body)

    async def unload_model(self, model: str, *, force: bool) -> dict[str, Any]:
        return await self._json("POST", "/models/unload", json={"model": model, "force": force})

    async def prometheus(self) -> str:
        return (await self._request("GET", "/metrics")).text

    async def ready(self) -> tuple[bool, str | None]:
        """Whether the gateway accepts requests, and why not."""
        response = await self._request("GET", "/ready", ok_statuses=(200, 503))
        if response.status_code == 200:
            return True, None
        try:
            body = response.json()
        except json.JSONDecodeError:
            return False, response.text[:300]
        return False, str(body.get("reason") or body.get("status") or "not ready")

    # --- plumbing ---

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._request(method, path, **kwargs)
        try:
            body = response.json()
        except json.JSONDecodeError as exc:
            raise EngineError(f"the gateway answered {method} {path} with invalid JSON") from exc
        if not isinstance(body, dict):
            raise EngineError(f"the gateway answered {method} {path} with JSON that is not an object")
        return body

    async def _request(
        self, method: str, path: str, *, ok_statuses: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        try:
            if (forwarded := _forwarded.get()) is not None:
                kwargs["headers"] = {**forwarded, **kwargs.get("headers", {})}
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"the gateway at {self.base_url} did not answer {method} {path} in time"
            ) from exc
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the gateway at {self.base_url}: {exc or type(exc).__name__} "
                "(is `nanoserve serve` running?)"
            ) from exc
        if response.status_code >= 400 and response.status_code not in ok_statuses:
            raise error_from_response(response)
        return response


def error_from_response(response: httpx.Response) -> NanoserveError:
    """The gateway's error body rebuilt as the exception of its status, keeping its message."""
    param = None
    try:
        err = response.json()["error"]
        if isinstance(err, dict):
            message, param = str(err.get("message") or ""), err.get("param")
        else:
            message = str(err)
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    message = message or f"HTTP {response.status_code}"
    status = response.status_code
    cls = _BY_STATUS.get(status) or (BadRequest if status < 500 else EngineError)
    retry = response.headers.get("retry-after")
    retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
    error = cls(message, param=param if isinstance(param, str) else None, retry_after=retry_after)
    if cls is BadRequest and status not in (400, 422):
        error.status = status  # type: ignore[misc]  # keep e.g. 405 or 415 as the gateway said
    return error


def _segment(value: str) -> str:
    """A value as one path segment (a collection or trace name with '/' stays one segment)."""
    return quote(value, safe="")
