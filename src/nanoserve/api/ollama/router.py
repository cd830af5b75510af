"""Ollama routes (and ``GET``/``HEAD /``, which Ollama clients probe): get the handler, call it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from nanoserve.api.ollama.serving import OLLAMA_VERSION, OllamaServing
from nanoserve.errors import NotFound, UnsupportedFeature

GET_HEAD = ["GET", "HEAD"]

# Endpoints that manage a model store nanoserve does not have: what to do instead.
_UNSUPPORTED = {
    "/push": ("push models", "it serves the models in its config file"),
    "/create": ("create models", "add the model to the config file (models:) and restart"),
    "/copy": ("copy models", "give the model another name with aliases: in the config file"),
}


def serving(request: Request) -> OllamaServing:
    return request.app.state.ollama


def create_ollama_router() -> APIRouter:
    router = APIRouter(tags=["ollama"])

    @router.api_route("/", methods=GET_HEAD, include_in_schema=False)
    async def root() -> Response:
        return PlainTextResponse("Ollama is running")

    @router.api_route("/api/version", methods=GET_HEAD)
    async def version() -> Response:
        return JSONResponse({"version": OLLAMA_VERSION})

    @router.post("/api/generate")
    async def generate(request: Request) -> Response:
        return await serving(request).generate(request)

    @router.post("/api/chat")
    async def chat(request: Request) -> Response:
        return await serving(request).chat(request)

    @router.post("/api/embed")
    async def embed(request: Request) -> Response:
        return await serving(request).embed(request)

    @router.post("/api/embeddings")
    async def embeddings(request: Request) -> Response:
        return await serving(request).embeddings(request)

    @router.api_route("/api/tags", methods=GET_HEAD)
    async def tags(request: Request) -> Response:
        return await serving(request).tags()

    @router.get("/api/ps")
    async def ps(request: Request) -> Response:
        return await serving(request).ps()

    @router.post("/api/show")
    async def show(request: Request) -> Response:
        return await serving(request).show(request)

    @router.post("/api/pull")
    async def pull(request: Request) -> Response:
        return await serving(request).pull(request)

    @router.delete("/api/delete")
    async def delete(request: Request) -> Response:
        return await serving(request).delete(request)

    for path, (what, hint) in _UNSUPPORTED.items():
        router.add_api_route("/api" + path, _unsupported(what, hint), methods=["POST"])

    @router.head("/api/blobs/{digest}")
    async def head_blob(digest: str) -> Response:
        raise NotFound(f"blob {digest!r} not found")

    router.add_api_route(
        "/api/blobs/{digest}", _unsupported("store blobs", "it has no model store"), methods=["POST"]
    )
    return router


def _unsupported(what: str, hint: str) -> Callable[[], Awaitable[Response]]:
    async def endpoint() -> Response:
        raise UnsupportedFeature(f"nanoserve does not {what}: {hint}")

    return endpoint
