"""OpenAI requests → engine calls → OpenAI responses, inside a worker.

The streaming hot path formats each chunk from a prebuilt prefix and ``json.dumps`` of the token
text only: one SSE event per generated token, no per-chunk dict building.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import numpy as np

from nanoserve.api.errors import openai_sse_error
from nanoserve.api.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, SamplingFields
from nanoserve.engines.base import (
    EmbeddingEngine,
    Finished,
    GenerationEngine,
    GenerationRequest,
    SamplingParams,
    Token,
)
from nanoserve.errors import ContextLengthExceeded, UnsupportedFeature
from nanoserve.worker.metrics import RequestProbe

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def sampling_params(req: SamplingFields, prompt_tokens: int, context_length: int) -> SamplingParams:
    max_tokens = req.max_tokens
    if max_tokens is None:
        max_tokens = context_length - prompt_tokens
        if max_tokens < 1:
            raise ContextLengthExceeded(prompt_tokens, 1, context_length)
    elif prompt_tokens + max_tokens > context_length:
        raise ContextLengthExceeded(prompt_tokens, max_tokens, context_length)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        top_k=req.top_k or 0,
        min_p=req.min_p or 0.0,
        repeat_penalty=req.repeat_penalty or 1.0,
        presence_penalty=req.presence_penalty or 0.0,
        frequency_penalty=req.frequency_penalty or 0.0,
        seed=req.seed,
        stop=req.stop_list,
        ignore_eos=req.ignore_eos,
    )


def usage(done: Finished) -> dict[str, Any]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": done.cached_tokens},
    }


def timings(done: Finished) -> dict[str, Any]:
    """nanoserve extra (llama-server's names): engine-side timings of this request."""
    return {
        "prompt_n": done.prompt_tokens,
        "cache_n": done.cached_tokens,
        "prompt_ms": round(done.prompt_ms, 3),
        "predicted_n": done.completion_tokens,
        "predicted_ms": round(done.decode_ms, 3),
    }


class GenerationService:
    def __init__(self, engine: GenerationEngine):
        self.engine = engine

    # -- request preparation ------------------------------------------------------------
    def _chat_prompt(self, req: ChatCompletionRequest) -> str:
        if req.tools and req.tool_choice != "none":
            raise UnsupportedFeature("tools are not supported by this model's engine yet", param="tools")
        if req.response_format is not None and req.response_format.type != "text":
            raise UnsupportedFeature(
                f"response_format {req.response_format.type!r} is not supported by this model's engine yet",
                param="response_format",
            )
        if not self.engine.supports_vision and any(m.has_images() for m in req.messages):
            raise UnsupportedFeature(
                f"model '{req.model}' does not support image input (text-only model)", param="messages"
            )
        # OpenAI's "developer" role is the system prompt of newer clients; templates know "system".
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text() or ""} for m in req.messages
        ]
        return self.engine.render_chat(messages)

    def prepare_chat(self, req: ChatCompletionRequest) -> GenerationRequest:
        return self._prepare(req, self._chat_prompt(req), prefix=req.context)

    def prepare_completion(self, req: CompletionRequest) -> GenerationRequest:
        return self._prepare(req, req.prompt)

    def _prepare(
        self, req: SamplingFields, prompt: str | list[int], prefix: list[int] | None = None
    ) -> GenerationRequest:
        tokens = prompt if isinstance(prompt, list) else self.engine.tokenize(prompt)
        if prefix:
            tokens = [*prefix, *tokens]
        params = sampling_params(req, len(tokens), self.engine.context_length)
        return GenerationRequest(prompt=tokens, params=params, request_id=uuid.uuid4().hex)

    # -- responses ---------------------------------------------------------------------
    async def complete(
        self,
        gen: GenerationRequest,
        *,
        model: str,
        chat: bool,
        return_context: bool = False,
        probe: RequestProbe | None = None,
    ) -> dict[str, Any]:
        parts: list[str] = []
        ids: list[int] = []
        done: Finished | None = None
        started, first = time.perf_counter(), 0.0
        try:
            async with aclosing(self.engine.generate(gen)) as events:
                async for event in events:
                    if not first:
                        first = time.perf_counter()
                    parts.append(event.text)
                    if isinstance(event, Finished):
                        done = event
                    else:
                        ids.append(event.id)
        finally:
            if probe is not None:
                probe.generation_done(started, first, done)
        assert done is not None
        text = "".join(parts)
        created = int(time.time())
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
            obj, prefix = "chat.completion", "chatcmpl-"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": done.finish_reason}
            obj, prefix = "text_completion", "cmpl-"
        body = {
            "id": prefix + gen.request_id,
            "object": obj,
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage(done),
            "timings": timings(done),
        }
        if return_context:
            body["context"] = [*gen.prompt, *ids]
        return body

    async def stream(
        self,
        gen: GenerationRequest,
        *,
        model: str,
        chat: bool,
        include_usage: bool,
        return_context: bool = False,
        probe: RequestProbe | None = None,
    ) -> AsyncIterator[bytes]:
        """One SSE event per token; with ``return_context`` the usage event carries ``context``.

        The role chunk goes out with the first token (as vLLM does), so the first byte a client
        (or the gateway) sees marks the time to first token."""
        ids: list[int] | None = [] if return_context else None
        created = int(time.time())
        if chat:
            head = (
                f'data: {{"id":"chatcmpl-{gen.request_id}","object":"chat.completion.chunk",'
                f'"created":{created},"model":{_dumps(model)},"choices":[{{"index":0,'
            )
            token_fmt = head + '"delta":{"content":%s},"logprobs":null,"finish_reason":null}]}\n\n'
            final_fmt = head + '"delta":{},"logprobs":null,"finish_reason":%s}]}\n\n'
            usage_head = (
                f'{{"id":"chatcmpl-{gen.request_id}","object":"chat.completion.chunk",'
                f'"created":{created},"model":{_dumps(model)},"choices":[],'
            )
            opening = (head + '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n').encode()
        else:
            head = (
                f'data: {{"id":"cmpl-{gen.request_id}","object":"text_completion",'
                f'"created":{created},"model":{_dumps(model)},"choices":[{{"index":0,'
            )
            token_fmt = head + '"text":%s,"logprobs":null,"finish_reason":null}]}\n\n'
            final_fmt = head + '"text":"","logprobs":null,"finish_reason":%s}]}\n\n'
            usage_head = (
                f'{{"id":"cmpl-{gen.request_id}","object":"text_completion",'
                f'"created":{created},"model":{_dumps(model)},"choices":[],'
            )
            opening = b""
        started, first = time.perf_counter(), 0.0
        done: Finished | None = None
        try:
            async with aclosing(self.engine.generate(gen)) as events:
                async for event in events:
                    if not first:
                        first = time.perf_counter()
                        if opening:
                            yield opening
                    if isinstance(event, Token):
                        if ids is not None:
                            ids.append(event.id)
                        if event.text:
                            yield (token_fmt % _dumps(event.text)).encode()
                        continue
                    done = event
                    if event.text:
                        yield (token_fmt % _dumps(event.text)).encode()
                    yield (final_fmt % _dumps(event.finish_reason)).encode()
                    if include_usage:
                        tail = f'"usage":{_dumps(usage(event))},"timings":{_dumps(timings(event))}'
                        if ids is not None:
                            tail += f',"context":{_dumps([*gen.prompt, *ids])}'
                        yield f"data: {usage_head}{tail}}}\n\n".encode()
        except Exception as exc:  # after the first byte the status is sent: report in-band
            yield openai_sse_error(exc)
        finally:
            if probe is not None:
                probe.generation_done(started, first, done)
        yield b"data: [DONE]\n\n"


class EmbeddingService:
    def __init__(self, engine: EmbeddingEngine):
        self.engine = engine

    async def embed(self, req: EmbeddingRequest, *, model: str, probe: RequestProbe | None = None) -> dict[str, Any]:
        if req.dimensions is not None and req.dimensions != self.engine.dimensions:
            raise UnsupportedFeature(
                f"model '{model}' produces {self.engine.dimensions}-dimensional embeddings; "
                f"dimensions={req.dimensions} is not supported",
                param="dimensions",
            )
        result = await self.engine.embed(req.texts)
        if probe is not None:
            probe.embedding_done(len(req.texts), result.prompt_tokens)
        data = []
        for i, vector in enumerate(result.vectors):
            if req.encoding_format == "base64":
                value: Any = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            else:
                value = vector
            data.append({"object": "embedding", "index": i, "embedding": value})
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }
