"""The gateway app: state built here and passed explicitly; the lifespan owns the orchestrator."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from nanoserve import __version__
from nanoserve.api import openapi, reload
from nanoserve.api.admin import create_admin_router
from nanoserve.api.errors import ollama_error_response
from nanoserve.api.fastpath import InferenceRoutes, inference_handlers
from nanoserve.api.health import create_health_router
from nanoserve.api.keys import create_keys_router
from nanoserve.api.ollama.router import create_ollama_router
from nanoserve.api.ollama.serving import OllamaServing
from nanoserve.api.openai.router import create_openai_router, create_rerank_alias_router
from nanoserve.api.openai.serving import OpenAIServing
from nanoserve.api.rag import create_rag_router, create_rag_service
from nanoserve.auth.middleware import AuthMiddleware, Gate
from nanoserve.config import Settings
from nanoserve.dashboard import router as dashboard
from nanoserve.dashboard.recorder import Recorder
from nanoserve.errors import BadRequest, NanoserveError, NotFound
from nanoserve.mcp.mount import McpEndpoint
from nanoserve.observability.middleware import RequestMiddleware
from nanoserve.observability.requests import note_error
from nanoserve.observability.telemetry import Telemetry, metrics_endpoint
from nanoserve.observability.tracing import Tracing
from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.wire.disconnect import CancelOnDisconnect
from nanoserve.wire.errors import bad_request_from_validation, openai_error_response

log = logging.getLogger("nanoserve.api")

OLLAMA_PREFIX = "/api/"


def render_error(request: Request, exc: BaseException) -> JSONResponse:
    """Errors in the dialect of the route: Ollama's under /api/, OpenAI's everywhere else."""
    note_error(exc, accepting=request.app.state.orchestrator.accepting)
    if request.url.path.startswith(OLLAMA_PREFIX):
        return ollama_error_response(exc)
    return openai_error_response(exc)


def render_gate_error(path: str, exc: NanoserveError) -> JSONResponse:
    """The gate's refusals (401, 403, 421, 429) in the dialect of the route they were aimed at."""
    return ollama_error_response(exc) if path.startswith(OLLAMA_PREFIX) else openai_error_response(exc)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return render_error(request, exc)

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"] if p != "body") or None
        return render_error(request, BadRequest(f"Invalid value for '{param}': {first['msg']}", param=param))

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err: NanoserveError = NotFound(f"No route {request.method} {request.url.path}")
        else:
            err = NanoserveError(str(exc.detail))
            err.status = exc.status_code  # type: ignore[misc]
        return render_error(request, err)

    app.add_exception_handler(NanoserveError, on_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_error)

    async def on_pydantic(request: Request, exc: ValidationError) -> JSONResponse:
        return render_error(request, bad_request_from_validation(exc))

    app.add_exception_handler(ValidationError, on_pydantic)  # type: ignore[arg-type]


def create_app(
    settings: Settings | None = None,
    *,
    tracing: Tracing | None = None,
    config_source: reload.ConfigSource | None = None,
) -> FastAPI:
    """``config_source`` reads the config again for ``POST /admin/reload`` and SIGHUP (``nanoserve
    serve`` passes its file and flags); without it the config cannot be reloaded."""
    settings = settings or Settings()
    orchestrator = Orchestrator(settings)
    telemetry = Telemetry(settings, orchestrator, tracing=tracing)
    recorder = Recorder(orchestrator) if settings.dashboard else None
    if recorder is not None:
        telemetry.request_listeners.append(recorder.on_request)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        orchestrator.start()
        if recorder is not None:
            recorder.start()
        try:
            with reloader.on_sighup():
                async with mcp.running():
                    yield
        finally:
            await rag.aclose()
            if recorder is not None:
                await recorder.aclose()
            await orchestrator.shutdown()
            telemetry.close()
            gate.close()

    app = FastAPI(
        title="nanoserve",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Traces are ours (observability/tracing.py, one span tree per request with the worker's);
        # FastAPI's own OpenTelemetry layer would check the global providers on every request
        # (2.5 % of the gateway's CPU per request) and add a second server span when tracing is on.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.orchestrator = orchestrator
    app.state.telemetry = telemetry
    app.state.openai = OpenAIServing(orchestrator, settings)
    app.state.ollama = OllamaServing(orchestrator, settings)
    _install_error_handlers(app)
    gate = app.state.gate = Gate(settings, registry=telemetry.metrics.registry)
    # innermost: the inference routes' handlers called directly, inside the gate and the record
    handlers = inference_handlers(app.state.openai, app.state.ollama)
    app.add_middleware(InferenceRoutes, handlers=handlers, render=render_error)
    app.add_middleware(AuthMiddleware, gate=gate, render=render_gate_error)  # inside RequestMiddleware
    app.add_middleware(RequestMiddleware, telemetry=telemetry)
    app.add_middleware(CancelOnDisconnect)  # outside the request records: they see the cancel
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.include_router(create_health_router())
    app.include_router(create_openai_router())
    app.include_router(create_rerank_alias_router())
    app.include_router(create_admin_router())
    reloader = reload.install(app, orchestrator, config_source)
    app.include_router(create_keys_router())
    app.include_router(create_ollama_router())
    rag = app.state.rag = create_rag_service(settings, gate.internal.headers)
    telemetry.metrics.registry.register(rag.prometheus_collector())
    app.include_router(create_rag_router(lambda request: request.app.state.rag), prefix="/v1/rag")
    mcp = app.state.mcp = McpEndpoint(settings)
    app.router.routes.append(mcp.route)  # /mcp, streamable HTTP; its tools call this gateway's REST API
    dashboard.install(app, recorder)  # /ui, /dashboard/..., and /docs + /redoc without a CDN
    openapi.install(app)  # every operation typed, errors in each dialect (api/openapi.py)
    return app
