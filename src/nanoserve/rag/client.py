"""The pipeline's way to the models: the gateway's own OpenAI API over HTTP.

The gateway passes its loopback URL, so the pipeline goes through the same routing, queues and
memory management as any client, and works unchanged against any OpenAI-compatible server.
Errors come back as the exception tree: the model's 4xx/5xx bodies are rebuilt into typed errors,
a refused connection is ``Unavailable``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from nanoserve.errors import (
    BadRequest,
    EngineError,
    ModelNotFound,
    NanoserveError,
    PayloadTooLarge,
    QueueFull,
    Unavailable,
)
from nanoserve.wire.rerank import BadRerankAnswer, scores_from_answer

DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
# Texts per embedding request when the model's cap is not known (a remote server): the default
# sentence-transformers cap (options.max_batch_tokens 8192) over the default model's longest text
# (context_length 256). The gateway passes each model's own figure (``embed_batch``).
EMBED_BATCH = 32


class InferenceClient:
    """``embed`` and ``chat`` against an OpenAI-compatible base URL (``.../v1`` is added)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        auth_headers: Callable[[], Mapping[str, str]] | None = None,
        verify: bool = True,
        embed_batch: Callable[[str], int] | None = None,
    ):
        """``auth_headers``: called per request (the gateway's internal credential and the key
        that asked); ``verify=False`` only for the gateway's own TLS on loopback;
        ``embed_batch(model)``: texts per embedding request for that model (``EMBED_BATCH`` if
        not given)."""
        self.base_url = base_url.rstrip("/")
        self._auth_headers = auth_headers
        self._embed_batch_of = embed_batch
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/v1",
            timeout=timeout,
            transport=transport,
            headers=headers,
            verify=verify,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def embed_batch(self, model: str) -> int:
        """Texts per embedding request for ``model``: what its engine takes in one request."""
        return max(1, self._embed_batch_of(model)) if self._embed_batch_of is not None else EMBED_BATCH

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order (sent in requests of ``embed_batch(model)`` texts; a
        request over the model's per-request token cap, a 413, is sent again in halves)."""
        vectors: list[list[float]] = []
        size = self.embed_batch(model)
        for i in range(0, len(texts), size):
            vectors.extend(await self._embed_batch(model, list(texts[i : i + size])))
        return vectors

    async def _embed_batch(self, model: str, batch: list[str]) -> list[list[float]]:
        try:
            body = await self._post("/embeddings", {"model": model, "input": batch}, model)
        except PayloadTooLarge:
            if len(batch) == 1:
                raise
            half = len(batch) // 2
            return [
                *await self._embed_batch(model, batch[:half]),
                *await self._embed_batch(model, batch[half:]),
            ]
        data = sorted(body.get("data", []), key=lambda d: d.get("index", 0))
        if len(data) != len(batch):
            raise EngineError(f"model {model!r} returned {len(data)} embeddings for {len(batch)} texts")
        return [[float(x) for x in d["embedding"]] for d in data]

    async def rerank(self, model: str, query: str, documents: Sequence[str]) -> list[float]:
        """A rerank model's relevance score of each document, in order (``/v1/rerank``)."""
        payload = {"model": model, "query": query, "documents": list(documents), "return_documents": False}
        body = await self._post("/rerank", payload, model)
        try:
            return scores_from_answer(body, len(documents))[0]
        except BadRerankAnswer as exc:
            raise EngineError(f"model {model!r} returned an unexpected rerank response: {exc}") from exc

    async def chat(self, model: str, messages: Sequence[dict[str, Any]], **sampling: Any) -> str:
        """The assistant message text of a non-streamed chat completion."""
        payload = {"model": model, "messages": list(messages), "stream": False, **sampling}
        body = await self._post("/chat/completions", payload, model)
        try:
            return body["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise EngineError(f"model {model!r} returned an unexpected chat response") from exc

    async def _post(self, path: str, payload: dict[str, Any], model: str) -> dict[str, Any]:
        try:
            headers = self._auth_headers() if self._auth_headers is not None else None
            response = await self._http.post(path, json=payload, headers=headers)
        except httpx.TimeoutException as exc:
            raise Unavailable(f"model {model!r} did not answer in time ({path})", retry_after=5) from exc
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the model server at {self.base_url}: {exc}", retry_after=5
            ) from exc
        if response.status_code >= 400:
            raise _error_from_response(response, model)
        try:
            return response.json()  # type: ignore[no-any-return]
        except json.JSONDecodeError as exc:
            raise EngineError(f"model {model!r} returned invalid JSON") from exc


def _error_from_response(response: httpx.Response, model: str) -> NanoserveError:
    try:
        err = response.json()["error"]
        message = err["message"] if isinstance(err, dict) else str(err)
    except (ValueError, KeyError, TypeError):
        message = response.text[:300] or f"HTTP {response.status_code}"
    retry = response.headers.get("retry-after")
    retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
    status = response.status_code
    if status == 404:
        return ModelNotFound(model)
    if status == 429:
        return QueueFull(f"model {model!r}: {message}", retry_after=retry_after)
    if status in (502, 503, 504):
        return Unavailable(f"model {model!r}: {message}", retry_after=retry_after)
    if status == 413:
        return PayloadTooLarge(f"model {model!r}: {message}")
    if 400 <= status < 500:
        return BadRequest(f"model {model!r}: {message}")
    return EngineError(f"model {model!r}: {message}")
