"""OpenAI routes: get the handler, call it, return its response."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from nanoserve.api.openai.serving import OpenAIServing


def serving(request: Request) -> OpenAIServing:
    return request.app.state.openai


def create_openai_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.get("/models")
    async def list_models(request: Request) -> dict[str, Any]:
        return serving(request).list_models()

    @router.get("/models/{name:path}")
    async def get_model(name: str, request: Request) -> dict[str, Any]:
        return serving(request).get_model(name)

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await serving(request).chat_completions(request)

    @router.post("/completions")
    async def completions(request: Request) -> Response:
        return await serving(request).completions(request)

    @router.post("/embeddings")
    async def embeddings(request: Request) -> Response:
        return await serving(request).embeddings(request)

    router.add_api_route("/rerank", rerank, methods=["POST"])
    return router


async def rerank(request: Request) -> Response:
    return await serving(request).rerank(request)


def create_rerank_alias_router() -> APIRouter:
    """``/rerank`` without the ``/v1``, as llama-server, vLLM, Infinity and TEI also serve it."""
    router = APIRouter(tags=["openai"])
    router.add_api_route("/rerank", rerank, methods=["POST"])
    return router
