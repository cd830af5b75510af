"""The Ollama API in the gateway: validate, translate to the workers' OpenAI protocol, translate back.

Every model route resolves the name the Ollama way (no tag means ``:latest``), reads the request's
lifecycle controls (``keep_alive`` drives the orchestrator: 0 unloads after the request, -1
keeps the model forever) and answers in Ollama's shapes; errors are rendered as
``{"error": "..."}`` by the app's handler for ``/api/`` routes.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from nanoserve.api import lifecycle, proxy
from nanoserve.api.affinity import affinity
from nanoserve.api.ollama import convert, models
from nanoserve.api.ollama.protocol import (
    ChatRequest,
    EmbeddingResponse,
    EmbeddingsRequest,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    ListResponse,
    NamedRequest,
    ProcessResponse,
    ShowRequest,
)
from nanoserve.api.ollama.stream import Reply, lines, ndjson, now_iso
from nanoserve.api.ollama.weights import WeightsCatalog
from nanoserve.api.pull import Puller
from nanoserve.auth.context import check_model
from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import BadRequest, NotFound, UnsupportedFeature
from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.wire.body import parse_json_object, read_body
from nanoserve.wire.errors import as_nanoserve_error, error_from_openai_body

M = TypeVar("M", bound=BaseModel)

NDJSON = "application/x-ndjson"
# The Ollama API level nanoserve answers like (reported by /api/version).
OLLAMA_VERSION = "0.5.0"


class OllamaServing:
    def __init__(self, orchestrator: Orchestrator, settings: Settings):
        self.orchestrator = orchestrator
        self.settings = settings
        self.weights = WeightsCatalog(started_at=time.time(), data_dir=settings.data_dir)
        self.puller = Puller(orchestrator, settings)

    # -- helpers -------------------------------------------------------------------------
    async def _parse(self, request: Request, model: type[M]) -> M:
        raw = await read_body(request, self.settings.max_body_bytes)
        return model.model_validate(parse_json_object(raw))

    def _config(self, name: str) -> ModelConfig:
        if not name:
            raise BadRequest("model is required", param="model")
        config = self.orchestrator.registry.find(name)
        if config is None:
            raise NotFound(f"model '{name}' not found", param="model")
        check_model(config.names)  # the key's model allow-list (403), loads included
        return config

    def _require(self, config: ModelConfig, name: str, kind: str, what: str) -> None:
        if config.kind != kind:
            raise UnsupportedFeature(f'"{name}" does not support {what}', param="model")

    async def _load_or_unload(self, name: str, controls: lifecycle.Controls) -> str:
        """An empty request: load the model (``done_reason`` "load"), or with keep_alive 0 unload it."""
        if controls.unload_after:
            await self.orchestrator.unload(name, reason="keep_alive=0")
            return "unload"
        lease = await self.orchestrator.acquire(
            name, keep_alive=controls.keep_alive, priority=controls.priority
        )
        lease.release()
        return "load"

    # -- generation ----------------------------------------------------------------------
    async def generate(self, request: Request) -> Response:
        started = time.perf_counter()
        req = await self._parse(request, GenerateRequest)
        config = self._config(req.model)
        self._require(config, req.model, "chat", "generate")
        controls = lifecycle.controls(req.keep_alive, req.priority, request.headers)
        if not req.prompt and not req.images:
            reason = await self._load_or_unload(req.model, controls)
            return JSONResponse(
                {
                    "model": req.model,
                    "created_at": now_iso(),
                    "response": "",
                    "done": True,
                    "done_reason": reason,
                }
            )
        path, body = convert.generate_body(req, config)
        return await self._generation(
            req.model,
            path,
            body,
            controls,
            req.streaming,
            chat=False,
            started=started,
            headers=request.headers,
        )

    async def chat(self, request: Request) -> Response:
        started = time.perf_counter()
        req = await self._parse(request, ChatRequest)
        config = self._config(req.model)
        self._require(config, req.model, "chat", "chat")
        controls = lifecycle.controls(req.keep_alive, req.priority, request.headers)
        if not req.messages:
            reason = await self._load_or_unload(req.model, controls)
            return JSONResponse(
                {
                    "model": req.model,
                    "created_at": now_iso(),
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": reason,
                }
            )
        body = convert.chat_body(req, config)
        return await self._generation(
            req.model,
            convert.CHAT_PATH,
            body,
            controls,
            req.streaming,
            chat=True,
            started=started,
            headers=request.headers,
        )

    async def _generation(
        self,
        name: str,
        path: str,
        body: dict[str, Any],
        controls: lifecycle.Controls,
        streaming: bool,
        *,
        chat: bool,
        started: float,
        headers: Mapping[str, str],
    ) -> Response:
        route = affinity(
            self.orchestrator, name, headers, messages=body.get("messages"), prompt=body.get("prompt")
        )
        upstream = await proxy.send(self.orchestrator, name, path, json.dumps(body).encode(), controls, route)
        reply = Reply(name, chat=chat, started=started, load_seconds=upstream.acquire_seconds)
        if upstream.status_code != 200:
            raw = await proxy.read_all(upstream)
            raise error_from_openai_body(upstream.status_code, raw)
        if not streaming:
            answer = json.loads(await proxy.read_all(upstream))
            return JSONResponse(reply.from_completion(answer))
        stream = lines(upstream, reply)
        try:
            first = await anext(stream)  # an error before the first token keeps its HTTP status
        except BaseException:
            await stream.aclose()
            await upstream.close()
            raise
        return proxy.UpstreamStreamingResponse(
            _continue(first, stream, upstream), upstream, media_type=NDJSON
        )

    # -- embeddings ----------------------------------------------------------------------
    async def _embed(
        self, name: str, texts: list[str], controls: lifecycle.Controls
    ) -> tuple[dict[str, Any], float]:
        content = json.dumps({"model": name, "input": texts, "encoding_format": "float"}).encode()
        upstream = await proxy.send(self.orchestrator, name, convert.EMBEDDING_PATH, content, controls)
        raw = await proxy.read_all(upstream)
        if upstream.status_code != 200:
            raise error_from_openai_body(upstream.status_code, raw)
        return json.loads(raw), upstream.acquire_seconds

    async def embed(self, request: Request) -> Response:
        started = time.perf_counter()
        req = await self._parse(request, EmbedRequest)
        config = self._config(req.model)
        self._require(config, req.model, "embedding", "embeddings")
        controls = lifecycle.controls(req.keep_alive, req.priority, request.headers)
        texts = req.texts
        if not texts:
            await self._load_or_unload(req.model, controls)
            return JSONResponse(EmbedResponse(model=req.model, embeddings=[]).model_dump(exclude_none=True))
        answer, load_seconds = await self._embed(req.model, texts, controls)
        vectors = [item["embedding"] for item in sorted(answer["data"], key=lambda d: d["index"])]
        if req.dimensions is not None:
            vectors = [_truncate(v, req.dimensions) for v in vectors]
        return JSONResponse(
            EmbedResponse(
                model=req.model,
                embeddings=vectors,
                total_duration=round((time.perf_counter() - started) * 1e9),
                load_duration=round(load_seconds * 1e9),
                prompt_eval_count=(answer.get("usage") or {}).get("prompt_tokens"),
            ).model_dump(exclude_none=True)
        )

    async def embeddings(self, request: Request) -> Response:
        req = await self._parse(request, EmbeddingsRequest)
        config = self._config(req.model)
        self._require(config, req.model, "embedding", "embeddings")
        controls = lifecycle.controls(req.keep_alive, req.priority, request.headers)
        if not req.prompt:
            await self._load_or_unload(req.model, controls)
            return JSONResponse(EmbeddingResponse(embedding=[]).model_dump())
        answer, _ = await self._embed(req.model, [req.prompt], controls)
        return JSONResponse(EmbeddingResponse(embedding=answer["data"][0]["embedding"]).model_dump())

    # -- models --------------------------------------------------------------------------
    async def tags(self) -> Response:
        configs = list(self.orchestrator.registry)
        described = await asyncio.to_thread(lambda: [self.weights.describe(c) for c in configs])
        listed = [models.list_model(c, w) for c, w in zip(configs, described, strict=True)]
        return JSONResponse(ListResponse(models=listed).model_dump())

    async def ps(self) -> Response:
        registry = self.orchestrator.registry
        loaded = [
            (v, registry.get(v.id)) for v in self.orchestrator.views() if v.state in models.LOADED_STATES
        ]
        described = await asyncio.to_thread(lambda: [self.weights.describe(c) for _, c in loaded])
        now = time.time()
        running = [models.process_model(v, c, w, now) for (v, c), w in zip(loaded, described, strict=True)]
        running.sort(key=lambda m: m.expires_at, reverse=True)  # longest remaining first, as Ollama
        return JSONResponse(ProcessResponse(models=running).model_dump())

    async def show(self, request: Request) -> Response:
        req = await self._parse(request, ShowRequest)
        config = self._config(req.target)
        weights = await asyncio.to_thread(self.weights.describe, config, verbose=req.verbose)
        return JSONResponse(models.show(config, weights).model_dump())

    # -- what nanoserve does not do -----------------------------------------------------
    async def pull(self, request: Request) -> Response:
        """Hub models (``hf:`` sources) are downloaded with progress (``api/pull.py``); a model
        with local weights is already "pulled"."""
        req = await self._parse(request, NamedRequest)
        events = self.puller.events(req.target)
        first = await anext(events)  # an unknown name or a bad reference: a status
        if req.stream is False:
            last = first
            async for last in events:  # a failed pull: its status
                pass
            return JSONResponse(last)
        return StreamingResponse(
            _continue(ndjson(first), (ndjson(event) async for event in events)), media_type=NDJSON
        )

    async def delete(self, request: Request) -> Response:
        req = await self._parse(request, NamedRequest)
        self._config(req.target)
        raise UnsupportedFeature(
            f"nanoserve does not delete models: remove '{req.target}' from the config file; "
            "to free its memory now, send a request with keep_alive 0",
            param="model",
        )


async def _continue(
    first: bytes, stream: AsyncIterator[bytes], upstream: proxy.Upstream | None = None
) -> AsyncIterator[bytes]:
    """The rest of an NDJSON stream; an error after the first line becomes an ``{"error"}`` line."""
    try:
        yield first
        async for line in stream:
            yield line
    except Exception as exc:  # noqa: BLE001  (the status is sent: report in-band, as Ollama does)
        err = as_nanoserve_error(exc)
        yield ndjson({"error": err.message})
    finally:
        if upstream is not None:
            await upstream.close()


def _truncate(vector: list[float], dimensions: int) -> list[float]:
    """Ollama's ``dimensions``: keep the first ``dimensions`` values and normalise again."""
    if dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(v * v for v in head)) or 1.0
    return [v / norm for v in head]
