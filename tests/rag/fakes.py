"""Test-only fakes: an OpenAI-compatible model server as an httpx MockTransport."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
from gateway import MOCK_CONFIG

from nanoserve.rag.client import InferenceClient

DIMS = 16


def hash_vector(text: str) -> list[float]:
    """A deterministic unit vector per text: bag of hashed words, so shared words mean similarity."""
    v = np.zeros(DIMS)
    for word in text.lower().split():
        v[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMS] += 1.0
    n = np.linalg.norm(v)
    return list(v / n) if n else list(np.ones(DIMS) / np.sqrt(DIMS))


class FakeModels:
    """Counts calls; ``fail_embed_call`` makes that (1-based) embeddings call fail with a 503."""

    def __init__(self, reply: str = "A reply.", fail_embed_call: int | None = None, embed_delay: float = 0.0):
        self.reply = reply
        self.fail_embed_call = fail_embed_call
        self.embed_delay = embed_delay  # seconds each embeddings request takes
        self.embed_calls = 0
        self.embed_sizes: list[int] = []  # texts in each embeddings request
        self.chat_calls: list[list[dict[str, str]]] = []
        self.chat_requests: list[dict[str, Any]] = []  # whole request bodies

    def handler(self) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
        async def handle(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            if request.url.path.endswith("/embeddings"):
                self.embed_calls += 1
                call = self.embed_calls
                self.embed_sizes.append(len(body["input"]))
                if self.embed_delay:
                    await asyncio.sleep(self.embed_delay)
                if call == self.fail_embed_call:
                    return httpx.Response(
                        503, json={"error": {"message": "worker died"}}, headers={"Retry-After": "2"}
                    )
                data = [{"index": i, "embedding": hash_vector(t)} for i, t in enumerate(body["input"])]
                return httpx.Response(200, json={"data": data})
            if body["model"] != "smollm2:135m":
                return httpx.Response(404, json={"error": {"message": "no such model"}})
            self.chat_calls.append(body["messages"])
            self.chat_requests.append(body)
            reply = self.reply
            for stop in body.get("stop") or []:  # as an OpenAI server does: the text before it
                reply = reply.split(stop, 1)[0]
            return httpx.Response(
                200, json={"choices": [{"message": {"role": "assistant", "content": reply}}]}
            )

        return handle

    def client(self, embed_batch: int | None = None) -> InferenceClient:
        """``embed_batch``: texts per embeddings request (the client's default if None)."""
        return InferenceClient(
            "http://models.test",
            transport=httpx.MockTransport(self.handler()),
            embed_batch=None if embed_batch is None else lambda model: embed_batch,
        )


# A gateway config with mock models behind /v1/rag: each embeddings request takes ``ttft_ms``.
def mock_rag_config(embed_ms: int) -> dict[str, Any]:
    return {
        "models": [
            MOCK_CONFIG["models"][0],
            {
                "id": "mock-embed",
                "engine": "mock-embedding",
                "kind": "embedding",
                "options": {"ttft_ms": embed_ms},
            },
        ],
        "rag": {"embedding_model": "mock-embed", "generation_model": "mock-chat"},
    }
