"""The inference routes, dispatched without FastAPI's per-request layers.

A chat, completion, embedding or rerank request is most of what the gateway serves, and its
handler needs nothing from FastAPI: it takes the ``Request``, validates the body itself and
returns a ``Response``. Through FastAPI it would still pass the exception middleware, the
dependency exit stack, the router's scan of the routes, ``request_response`` and the dependency
solver: a fifth of the gateway's CPU per request, measured with py-spy beside
benchmarks/overhead.py. ``InferenceRoutes`` is a pure ASGI middleware, inside the request record
and the gate, that calls those handlers directly.

The routes stay declared on the FastAPI app, calling the same handlers (the OpenAPI schema and the
docs come from there, and a request by another method gets the router's answer); errors are
answered the way the app's exception handlers answer them (``render``: each route's own dialect),
and anything unexpected goes on up to the app's server-error handler, as from the router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nanoserve.api.ollama.serving import OllamaServing
from nanoserve.api.openai.serving import OpenAIServing
from nanoserve.errors import NanoserveError
from nanoserve.wire.errors import bad_request_from_validation

Handler = Callable[[Request], Awaitable[Response]]
Render = Callable[[Request, BaseException], Response]


def inference_handlers(openai: OpenAIServing, ollama: OllamaServing) -> dict[str, Handler]:
    """``POST`` path -> handler, as the OpenAI and Ollama routers declare them."""
    return {
        "/v1/chat/completions": openai.chat_completions,
        "/v1/completions": openai.completions,
        "/v1/embeddings": openai.embeddings,
        "/v1/rerank": openai.rerank,
        "/rerank": openai.rerank,
        "/api/chat": ollama.chat,
        "/api/generate": ollama.generate,
        "/api/embed": ollama.embed,
        "/api/embeddings": ollama.embeddings,
    }


class InferenceRoutes:
    def __init__(self, app: ASGIApp, handlers: Mapping[str, Handler], render: Render):
        self.app = app
        # a Route per path for scope["route"], as the router would set it (the metrics label)
        self.routes = {path: Route(path, handler, methods=["POST"]) for path, handler in handlers.items()}
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except NanoserveError as exc:
            response = self.render(request, exc)
        except ValidationError as exc:
            response = self.render(request, bad_request_from_validation(exc))
        await response(scope, receive, send)
