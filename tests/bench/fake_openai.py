"""A small OpenAI-compatible server for the bench tests: known TTFT and token rate.

It streams chat and completions as SSE (one chunk per token, a usage chunk, ``[DONE]``), answers
embeddings, and can misbehave on purpose (no usage, a stream cut short, an error event, an early
EOS). It runs under uvicorn in a thread on a free loopback port and records the peak number of
requests it served at once, so the client's concurrency limit is checked from the server's side.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

CHAT_TEMPLATE_TOKENS = 5  # what the fake "template" adds to a chat prompt's token count


@dataclass
class FakeBehaviour:
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0  # 0 = as fast as possible
    send_usage: bool = True
    cut_after: int | None = None  # end the stream after this many tokens, no finish_reason, no [DONE]
    error_after: int | None = None  # send an SSE error event after this many tokens
    eos_after: int | None = None  # finish ("stop") after this many tokens unless ignore_eos
    embed_delay_ms: float = 0.0
    api_key: str | None = None


@dataclass
class FakeState:
    behaviour: FakeBehaviour = field(default_factory=FakeBehaviour)
    in_flight: int = 0
    peak_in_flight: int = 0
    bodies: list[dict] = field(default_factory=list)

    def reset(self, behaviour: FakeBehaviour) -> None:
        self.behaviour = behaviour
        self.in_flight = self.peak_in_flight = 0
        self.bodies.clear()


def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


def create_app(state: FakeState, *, chat_model: str, embedding_model: str) -> Starlette:
    async def check(request: Request, model_kind: str) -> dict | JSONResponse:
        behaviour = state.behaviour
        if behaviour.api_key and request.headers.get("authorization") != f"Bearer {behaviour.api_key}":
            return _error(401, "invalid api key", "invalid_api_key")
        body = await request.json()
        state.bodies.append(body)
        expected = chat_model if model_kind == "chat" else embedding_model
        if body.get("model") != expected:
            return _error(404, f"The model '{body.get('model')}' does not exist.", "model_not_found")
        return body

    async def generate(request: Request) -> StreamingResponse | JSONResponse:
        body = await check(request, "chat")
        if isinstance(body, JSONResponse):
            return body
        chat = request.url.path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        prompt_tokens = len(prompt.split()) + (CHAT_TEMPLATE_TOKENS if chat else 0)
        return StreamingResponse(
            _stream(state, body, chat=chat, prompt_tokens=prompt_tokens), media_type="text/event-stream"
        )

    async def embeddings(request: Request) -> JSONResponse:
        body = await check(request, "embedding")
        if isinstance(body, JSONResponse):
            return body
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            await asyncio.sleep(state.behaviour.embed_delay_ms / 1000)
        finally:
            state.in_flight -= 1
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(texts))]
        tokens = sum(len(t.split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": embedding_model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(request: Request) -> JSONResponse:
        ids = [chat_model, embedding_model]
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model"} for m in ids]})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", generate, methods=["POST"]),
            Route("/v1/completions", generate, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models),
        ]
    )


def _chunk(chat: bool, text: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    if usage is not None:
        data: dict = {"object": "chat.completion.chunk", "choices": [], "usage": usage}
    elif chat:
        delta = {} if text is None else {"content": text}
        data = {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    else:
        data = {
            "object": "text_completion",
            "choices": [{"index": 0, "text": text or "", "finish_reason": finish}],
        }
    return _sse(data)


def _sse(data: dict) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


async def _stream(state: FakeState, body: dict, *, chat: bool, prompt_tokens: int) -> AsyncIterator[bytes]:
    behaviour = state.behaviour
    max_tokens = int(body.get("max_tokens") or 16)
    if behaviour.eos_after is not None and not body.get("ignore_eos"):
        max_tokens = min(max_tokens, behaviour.eos_after)
    state.in_flight += 1
    state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
    try:
        if chat:
            yield _sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        await asyncio.sleep(behaviour.ttft_ms / 1000)
        first = time.perf_counter()
        interval = 1.0 / behaviour.tokens_per_second if behaviour.tokens_per_second else 0.0
        for i in range(max_tokens):
            if i == behaviour.cut_after:
                return
            if i == behaviour.error_after:
                yield _sse({"error": {"message": "engine exploded", "code": 500}})
                return
            if i and interval:  # pace against the clock so the rate holds when the loop is busy
                await asyncio.sleep(max(0.0, first + i * interval - time.perf_counter()))
            yield _chunk(chat, f"w{i} ")
        reason = "length" if max_tokens == int(body.get("max_tokens") or 16) else "stop"
        yield _chunk(chat, None, finish=reason)
        if behaviour.send_usage:
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": max_tokens,
                "total_tokens": prompt_tokens + max_tokens,
            }
            yield _chunk(chat, None, usage=usage)
        yield b"data: [DONE]\n\n"
    finally:
        state.in_flight -= 1


class FakeServer:
    """The fake app under uvicorn in a background thread, on a free 127.0.0.1 port."""

    def __init__(self, *, chat_model: str = "fake-chat", embedding_model: str = "fake-embed"):
        self.chat_model = chat_model
        self.embedding_model = embedding_model
        self.state = FakeState()
        app = create_app(self.state, chat_model=chat_model, embedding_model=embedding_model)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
