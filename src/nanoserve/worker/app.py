"""The worker's HTTP app: OpenAI routes over one engine, plus ``/health`` and ``/info``.

``GET /metrics`` exposes the engine's metrics in Prometheus text format (``worker/metrics.py``).
The engine loads in the background after the server starts listening, so ``/health`` answers
at once: 503 ``loading`` until the model is ready, 200 ``ok`` after, 500 ``failed`` with the
reason if loading failed. The protocol is written down in docs/worker-protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import psutil
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from nanoserve.engines.base import EmbeddingEngine, Engine, GenerationEngine, GenerationRequest, RerankEngine
from nanoserve.errors import BadRequest, NanoserveError, Unavailable, UnsupportedFeature
from nanoserve.observability.tracing import Tracing
from nanoserve.wire.body import parse_body
from nanoserve.wire.disconnect import CancelOnDisconnect
from nanoserve.wire.errors import openai_error_response
from nanoserve.wire.headers import SSE_HEADERS, TIME_LIMIT_HEADER
from nanoserve.wire.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from nanoserve.wire.rerank import RerankRequest
from nanoserve.worker.metrics import WorkerMetrics, WorkerTelemetry
from nanoserve.worker.rerank import RerankService
from nanoserve.worker.serving import EmbeddingService, GenerationService
from nanoserve.worker.tools import DEFAULT_TOOL_FORMAT

log = logging.getLogger("nanoserve.worker")


async def _import_streaming() -> None:
    """Import what the first streamed answer needs while the engine loads in its thread.

    Starlette streams through anyio, which imports its asyncio backend on first use: ~50 ms on
    the first request after a cold start otherwise (benchmarks/README.md, "Cold start").
    """
    async with anyio.create_task_group():
        pass


class WorkerState:
    """The engine and its load status; owned by the worker app's lifespan."""

    def __init__(
        self,
        engine: Engine,
        model_name: str,
        tracing: Tracing | None = None,
        tool_format: str = DEFAULT_TOOL_FORMAT,
    ):
        self.engine = engine
        self.model_name = model_name
        self.status = "loading"
        self.error: str | None = None
        self.loaded_at: float | None = None
        self.load_seconds: float | None = None
        self.generation = (
            GenerationService(engine, tool_format=tool_format)
            if isinstance(engine, GenerationEngine)
            else None
        )
        self.embedding = EmbeddingService(engine) if isinstance(engine, EmbeddingEngine) else None
        self.rerank = RerankService(engine) if isinstance(engine, RerankEngine) else None
        self.telemetry = WorkerTelemetry(WorkerMetrics(model_name, self.engine_stats), tracing)

    def engine_stats(self) -> dict[str, Any]:
        """The engine's counters (``engine.info()["stats"]``), once it is loaded."""
        if self.status != "ok":
            return {}
        return dict(self.engine.info().get("stats") or {})

    async def load(self) -> None:
        start = time.perf_counter()
        try:
            await asyncio.gather(self.engine.start(), _import_streaming())
        except Exception as exc:
            log.exception("engine failed to load")
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        self.load_seconds = time.perf_counter() - start
        self.loaded_at = time.time()
        self.status = "ok"
        log.info("model %s ready in %.2fs", self.model_name, self.load_seconds)

    def require_ready(self) -> None:
        if self.status != "ok":
            raise Unavailable(f"model '{self.model_name}' is {self.status}: {self.error or 'not ready yet'}")


Handler = Callable[[Request, WorkerState], Awaitable[Response]]
S = TypeVar("S")


def _route(path: str, handler: Handler, methods: list[str]) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, request.app.state.worker)
        except (NanoserveError, ValidationError) as exc:
            return openai_error_response(exc)
        except Exception as exc:  # noqa: BLE001  (logged 500 in OpenAI's shape)
            return openai_error_response(exc)

    return Route(path, endpoint, methods=methods)


async def health(request: Request, state: WorkerState) -> Response:
    body: dict[str, Any] = {"status": state.status}
    if state.status == "loading":  # the gateway's start timeout counts per phase
        body["phase"] = state.engine.phase
    if state.error:
        body["error"] = state.error
    code = {"ok": 200, "loading": 503}.get(state.status, 500)
    return JSONResponse(body, status_code=code)


async def info(request: Request, state: WorkerState) -> Response:
    proc = psutil.Process()
    mem = proc.memory_full_info()
    engine = state.engine
    return JSONResponse(
        {
            "model": state.model_name,
            "engine": engine.name,
            "kind": min(engine.kinds),
            "status": state.status,
            "pid": os.getpid(),
            "loaded_at": state.loaded_at,
            "load_seconds": state.load_seconds,
            "memory": {"rss_bytes": mem.rss, "uss_bytes": mem.uss, "pss_bytes": getattr(mem, "pss", None)},
            "context_length": engine.spec.context_length,
            "slots": engine.spec.parallel,
            "threads": engine.spec.threads,
            "capabilities": {"grammar": engine.supports_grammar, "vision": engine.supports_vision},
            "engine_info": engine.info() if state.status == "ok" else {},
        }
    )


async def metrics(request: Request, state: WorkerState) -> Response:
    return Response(state.telemetry.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def models(request: Request, state: WorkerState) -> Response:
    return JSONResponse(
        {
            "object": "list",
            "data": [{"id": state.model_name, "object": "model", "created": 0, "owned_by": "nanoserve"}],
        }
    )


def _generation(state: WorkerState) -> GenerationService:
    state.require_ready()
    if state.generation is None:
        what = "a rerank" if state.rerank is not None else "an embedding"
        raise UnsupportedFeature(f"model '{state.model_name}' is {what} model; it cannot generate text")
    return state.generation


def _limit_time(gen: GenerationRequest, request: Request) -> None:
    """The gateway's time limit for the request (``TIME_LIMIT_HEADER``, milliseconds left): the
    engine then ends it as at ``max_tokens``."""
    value = request.headers.get(TIME_LIMIT_HEADER)
    if value is None:
        return
    try:
        left = float(value) / 1000
    except ValueError:
        raise BadRequest(f"{TIME_LIMIT_HEADER} must be a number of milliseconds") from None
    gen.params.deadline = time.perf_counter() + max(0.0, left)


async def chat_completions(request: Request, state: WorkerState) -> Response:
    probe = state.telemetry.probe(request.url.path, request.headers)
    req = await parse_body(request, ChatCompletionRequest)
    service = _generation(state)
    gen, plan = service.prepare_chat(req)
    _limit_time(gen, request)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(
            service.stream(
                gen,
                model=req.model,
                chat=True,
                include_usage=include_usage,
                return_context=req.return_context,
                probe=probe,
                plan=plan,
            ),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    body = await service.complete(
        gen, model=req.model, chat=True, return_context=req.return_context, probe=probe, plan=plan
    )
    return JSONResponse(body)


async def completions(request: Request, state: WorkerState) -> Response:
    probe = state.telemetry.probe(request.url.path, request.headers)
    req = await parse_body(request, CompletionRequest)
    service = _generation(state)
    gen = service.prepare_completion(req)
    _limit_time(gen, request)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(
            service.stream(gen, model=req.model, chat=False, include_usage=include_usage, probe=probe),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    return JSONResponse(await service.complete(gen, model=req.model, chat=False, probe=probe))


def _served(state: WorkerState, service: S | None, what: str) -> S:
    """The route's service once the model is loaded; a model of another kind is a 400."""
    state.require_ready()
    if service is None:
        raise UnsupportedFeature(f"model '{state.model_name}' is not {what} model", param="model")
    return service


async def embeddings(request: Request, state: WorkerState) -> Response:
    probe = state.telemetry.probe(request.url.path, request.headers)
    req = await parse_body(request, EmbeddingRequest)
    service = _served(state, state.embedding, "an embedding")
    return JSONResponse(await service.embed(req, model=req.model, probe=probe))


async def rerank(request: Request, state: WorkerState) -> Response:
    probe = state.telemetry.probe(request.url.path, request.headers)
    req = await parse_body(request, RerankRequest)
    service = _served(state, state.rerank, "a rerank")
    return JSONResponse(await service.rerank(req, model=req.model, probe=probe))


def create_worker_app(
    engine: Engine, model_name: str, *, tracing: Tracing | None = None, tool_format: str = DEFAULT_TOOL_FORMAT
) -> Starlette:
    state = WorkerState(engine, model_name, tracing, tool_format)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(state.load())
        try:
            yield
        finally:
            task.cancel()
            if state.status == "ok":
                await engine.close()
            state.telemetry.tracing.shutdown()

    app = Starlette(
        routes=[
            _route("/health", health, ["GET"]),
            _route("/info", info, ["GET"]),
            _route("/metrics", metrics, ["GET"]),
            _route("/v1/models", models, ["GET"]),
            _route("/v1/chat/completions", chat_completions, ["POST"]),
            _route("/v1/completions", completions, ["POST"]),
            _route("/v1/embeddings", embeddings, ["POST"]),
            _route("/v1/rerank", rerank, ["POST"]),
        ],
        middleware=[Middleware(CancelOnDisconnect)],  # the gateway left: stop the engine's work
        lifespan=lifespan,
    )
    app.state.worker = state
    return app
