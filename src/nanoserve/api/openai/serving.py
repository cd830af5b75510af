"""The OpenAI API in the gateway: validate once, lease a worker, relay its answer."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from nanoserve.api import lifecycle, proxy
from nanoserve.api.affinity import affinity
from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import BadRequest, EngineError
from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.wire.body import parse_json_object, read_body
from nanoserve.wire.errors import openai_sse_error
from nanoserve.wire.headers import SSE_HEADERS
from nanoserve.wire.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from nanoserve.wire.rerank import BadRerankAnswer, RerankRequest, rerank_answer, scores_from_answer

_KIND_OF_ROUTE = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "chat",
    "/v1/embeddings": "embedding",
    "/v1/rerank": "rerank",
}


def model_card(config: ModelConfig, name: str | None = None) -> dict[str, Any]:
    return {
        "id": name or config.id,
        "object": "model",
        "created": 0,
        "owned_by": "nanoserve",
        "kind": config.kind,
        "aliases": config.aliases,
        "context_length": config.context_length,
    }


class OpenAIServing:
    def __init__(self, orchestrator: Orchestrator, settings: Settings):
        self.orchestrator = orchestrator
        self.settings = settings

    def list_models(self) -> dict[str, Any]:
        return {"object": "list", "data": [model_card(m) for m in self.orchestrator.registry]}

    def get_model(self, name: str) -> dict[str, Any]:
        return model_card(self.orchestrator.registry.get(name), name)

    async def chat_completions(self, request: Request) -> Response:
        return await self._generate(request, "/v1/chat/completions", ChatCompletionRequest)

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, "/v1/completions", CompletionRequest)

    async def embeddings(self, request: Request) -> Response:
        raw = await read_body(request, self.settings.max_body_bytes)
        req = EmbeddingRequest.model_validate(parse_json_object(raw))
        self._check_kind(req.model, "/v1/embeddings")
        controls = lifecycle.controls(req.keep_alive, req.priority, request.headers)
        upstream = await proxy.send(self.orchestrator, req.model, "/v1/embeddings", raw, controls)
        body = await proxy.read_all(upstream)
        return Response(body, status_code=upstream.status_code, media_type="application/json")

    async def rerank(self, request: Request) -> Response:
        """``/v1/rerank`` and ``/rerank``: the backend scores every document (our worker, or a
        llama-server or vLLM behind ``engine: command``/``remote``); the answer is ranked, cut and
        shaped here, in the request's dialect (wire/rerank.py)."""
        raw = await read_body(request, self.settings.max_body_bytes)
        req = RerankRequest.model_validate(parse_json_object(raw))
        self._check_kind(req.model, "/v1/rerank")
        controls = lifecycle.controls(req.keep_alive, req.priority, request.headers)
        body = json.dumps(req.upstream_body(), ensure_ascii=False).encode()
        upstream = await proxy.send(self.orchestrator, req.model, "/v1/rerank", body, controls)
        answer = await proxy.read_all(upstream)
        if upstream.status_code != 200:
            return Response(answer, status_code=upstream.status_code, media_type="application/json")
        try:
            scores, tokens = scores_from_answer(json.loads(answer), len(req.inputs))
        except BadRerankAnswer as exc:
            raise EngineError(f"model '{req.model}' answered the rerank request unexpectedly: {exc}") from exc
        return JSONResponse(rerank_answer(req, scores, tokens, model=req.model))

    async def _generate(self, request: Request, path: str, model: type[BaseModel]) -> Response:
        raw = await read_body(request, self.settings.max_body_bytes)
        req = model.model_validate(parse_json_object(raw))
        assert isinstance(req, (ChatCompletionRequest, CompletionRequest))
        self._check_kind(req.model, path)
        controls = lifecycle.controls(req.keep_alive, req.priority, request.headers)
        if isinstance(req, ChatCompletionRequest):
            route = affinity(
                self.orchestrator, req.model, request.headers, user=req.user, messages=req.messages
            )
        else:
            route = affinity(self.orchestrator, req.model, request.headers, user=req.user, prompt=req.prompt)
        upstream = await proxy.send(self.orchestrator, req.model, path, raw, controls, route)
        if not req.stream or upstream.status_code != 200:
            body = await proxy.read_all(upstream)
            return Response(body, status_code=upstream.status_code, media_type="application/json")
        return proxy.UpstreamStreamingResponse(
            proxy.relay(upstream, openai_sse_error),
            upstream,
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )

    def _check_kind(self, name: str, path: str) -> None:
        config = self.orchestrator.registry.get(name)
        if config.kind != _KIND_OF_ROUTE[path]:
            what = "an embedding model" if config.kind == "embedding" else f"a {config.kind} model"
            raise BadRequest(f"model '{name}' is {what}; it cannot serve {path}", param="model")
