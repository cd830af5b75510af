"""OpenAI requests → engine calls → OpenAI responses, inside a worker.

The streaming hot path formats each chunk from a prebuilt prefix and ``json.dumps`` of the token
text only: one SSE event per generated token, no per-chunk dict building, and one write per token:
the role chunk goes out with the first token, the finish reason, usage and ``[DONE]`` with the last.
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

from nanoserve.engines.base import (
    EmbeddingEngine,
    Finished,
    GenerationEngine,
    GenerationRequest,
    SamplingParams,
    Token,
)
from nanoserve.errors import BadRequest, ConfigError, ContextLengthExceeded, UnsupportedFeature
from nanoserve.wire.errors import openai_sse_error
from nanoserve.wire.headers import SSE_DONE
from nanoserve.wire.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    SamplingFields,
)
from nanoserve.worker.metrics import RequestProbe
from nanoserve.worker.output import Answer, OutputEvent, OutputPlan, plan_output
from nanoserve.worker.steps import run_answer
from nanoserve.worker.structured import Bounds
from nanoserve.worker.tools import (
    DEFAULT_TOOL_FORMAT,
    TOOL_FORMATS,
    CallStart,
    parse_tool_choice,
    parse_tools,
    render_messages,
    template_tools,
)

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
    def __init__(
        self,
        engine: GenerationEngine,
        *,
        tool_format: str = DEFAULT_TOOL_FORMAT,
        bounds: Bounds | None = None,
    ):
        self.engine = engine
        if tool_format not in TOOL_FORMATS:
            raise ConfigError(f"unknown tool format {tool_format!r} (known: {', '.join(TOOL_FORMATS)})")
        self.tool_format = TOOL_FORMATS[tool_format]
        self.bounds = bounds or Bounds()

    # -- request preparation ------------------------------------------------------------
    def prepare_chat(self, req: ChatCompletionRequest) -> tuple[GenerationRequest, OutputPlan]:
        if not self.engine.supports_vision and any(m.has_images() for m in req.messages):
            raise UnsupportedFeature(
                f"model '{req.model}' does not support image input (text-only model)", param="messages"
            )
        tools = parse_tools(req.tools)
        choice = parse_tool_choice(req.tool_choice, tools)
        plan = plan_output(
            req.response_format,
            tools,
            choice,
            fmt=self.tool_format,
            can_constrain=self.engine.supports_grammar,
            parallel_calls=req.parallel_tool_calls,
            bounds=self.bounds,
        )
        if req.ignore_eos and not plan.plain:  # a finished grammar only allows end-of-generation
            raise BadRequest(
                "ignore_eos cannot be combined with tools or response_format", param="ignore_eos"
            )
        described = tools if choice != "none" else []
        messages = render_messages(req.messages, described, self.tool_format)
        prompt = self.engine.render_chat(messages, tools=template_tools(described, self.tool_format))
        gen = self._prepare(req, prompt, prefix=req.context)
        plan.check(gen.params.max_tokens, self._token_count)
        return gen, plan

    def _token_count(self, text: str) -> int:
        return len(self.engine.tokenize(text))

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
        plan: OutputPlan | None = None,
    ) -> dict[str, Any]:
        parts: list[str] = []
        ids: list[int] = []
        done: Finished | None = None
        answer: Answer | None = None
        started, first = time.perf_counter(), 0.0
        try:
            if plan is not None and not plan.plain:
                async with aclosing(run_answer(self.engine, gen, plan)) as updates:
                    async for update in updates:
                        first = first or time.perf_counter()
                        ids += update.ids
                        done, answer = update.done, update.answer
            else:
                async with aclosing(self.engine.generate(gen)) as events:
                    async for event in events:
                        first = first or time.perf_counter()
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
                "message": {"role": "assistant", "content": text}
                if answer is None
                else answer.openai_message(),
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
            if answer is not None and answer.closing:
                choice["closed_by_server"] = True
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
        plan: OutputPlan | None = None,
    ) -> AsyncIterator[bytes]:
        """One SSE event per token; with ``return_context`` the usage event carries ``context``.

        The role chunk goes out with the first token (as vLLM does), so the first byte a client
        (or the gateway) sees marks the time to first token. Answers with a grammar (JSON, tool
        calls) take ``_stream_planned``; plain text keeps this lean path."""
        if plan is not None and not plan.plain:
            async for chunk in self._stream_planned(
                gen,
                plan,
                model=model,
                include_usage=include_usage,
                return_context=return_context,
                probe=probe,
            ):
                yield chunk
            return
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
            opening = (
                head + '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
            ).encode()
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
        ended = False
        try:
            async with aclosing(self.engine.generate(gen)) as events:
                async for event in events:
                    head = b""  # the opening goes out in the first token's write
                    if not first:
                        first = time.perf_counter()
                        head = opening
                    if isinstance(event, Token):
                        if ids is not None:
                            ids.append(event.id)
                        if event.text:
                            yield head + (token_fmt % _dumps(event.text)).encode()
                        elif head:
                            yield head
                        continue
                    done = event
                    # the end in one write: the last text, the finish reason, usage, [DONE]
                    end = [head]
                    if event.text:
                        end.append((token_fmt % _dumps(event.text)).encode())
                    end.append((final_fmt % _dumps(event.finish_reason)).encode())
                    if include_usage:
                        tail = f'"usage":{_dumps(usage(event))},"timings":{_dumps(timings(event))}'
                        if ids is not None:
                            tail += f',"context":{_dumps([*gen.prompt, *ids])}'
                        end.append(f"data: {usage_head}{tail}}}\n\n".encode())
                    end.append(SSE_DONE)
                    yield b"".join(end)
                    ended = True
        except Exception as exc:  # noqa: BLE001  (after the first byte the status is sent: report in-band)
            yield openai_sse_error(exc)
        finally:
            if probe is not None:
                probe.generation_done(started, first, done)
        if not ended:
            yield SSE_DONE

    async def _stream_planned(
        self,
        gen: GenerationRequest,
        plan: OutputPlan,
        *,
        model: str,
        include_usage: bool,
        return_context: bool,
        probe: RequestProbe | None,
    ) -> AsyncIterator[bytes]:
        """Content deltas for text and JSON; OpenAI's ``tool_calls`` deltas for calls: the name
        with the call's id first, then the arguments as they are written."""
        ids: list[int] = []
        chunks = _ChunkFormat(f"chatcmpl-{gen.request_id}", int(time.time()), model)
        started, first = time.perf_counter(), 0.0
        done: Finished | None = None
        opened = False
        try:
            async with aclosing(run_answer(self.engine, gen, plan)) as updates:
                async for update in updates:
                    first = first or time.perf_counter()
                    ids += update.ids
                    if update.events and not opened:
                        opened = True
                        yield chunks.opening(tool_calls=not isinstance(update.events[0], str))
                    for item in update.events:
                        yield chunks.event(item)
                    if update.done is None:
                        continue
                    done = update.done
                    if not opened:
                        yield chunks.opening(tool_calls=False)
                    closed = update.answer is not None and bool(update.answer.closing)
                    yield chunks.final(done.finish_reason, closed=closed)
                    if include_usage:
                        extra = {"context": [*gen.prompt, *ids]} if return_context else {}
                        yield chunks.usage(done, extra)
        except Exception as exc:  # noqa: BLE001  (after the first byte the status is sent: report in-band)
            yield openai_sse_error(exc)
        finally:
            if probe is not None:
                probe.generation_done(started, first, done)
        yield SSE_DONE


class _ChunkFormat:
    """SSE chunks of one streamed chat answer (the planned path)."""

    def __init__(self, request_id: str, created: int, model: str):
        self._head = (
            f'data: {{"id":"{request_id}","object":"chat.completion.chunk",'
            f'"created":{created},"model":{_dumps(model)},"choices":[{{"index":0,'
        )
        self._usage_head = (
            f'data: {{"id":"{request_id}","object":"chat.completion.chunk",'
            f'"created":{created},"model":{_dumps(model)},"choices":[],'
        )

    def _delta(self, delta: str) -> bytes:
        return (self._head + '"delta":' + delta + ',"logprobs":null,"finish_reason":null}]}\n\n').encode()

    def opening(self, *, tool_calls: bool) -> bytes:
        return self._delta('{"role":"assistant","content":' + ("null" if tool_calls else '""') + "}")

    def event(self, item: OutputEvent) -> bytes:
        if isinstance(item, str):
            return self._delta('{"content":' + _dumps(item) + "}")
        if isinstance(item, CallStart):
            call = {
                "index": item.index,
                "id": item.id,
                "type": "function",
                "function": {"name": item.name, "arguments": ""},
            }
        else:
            call = {"index": item.index, "function": {"arguments": item.text}}
        return self._delta('{"tool_calls":[' + _dumps(call) + "]}")

    def final(self, finish_reason: str, *, closed: bool) -> bytes:
        extra = ',"closed_by_server":true' if closed else ""
        return (
            self._head
            + '"delta":{},"logprobs":null,"finish_reason":'
            + _dumps(finish_reason)
            + extra
            + "}]}\n\n"
        ).encode()

    def usage(self, done: Finished, extra: dict[str, Any]) -> bytes:
        body = f'"usage":{_dumps(usage(done))},"timings":{_dumps(timings(done))}'
        for key, value in extra.items():
            body += f",{_dumps(key)}:{_dumps(value)}"
        return (self._usage_head + body + "}\n\n").encode()


class EmbeddingService:
    def __init__(self, engine: EmbeddingEngine):
        self.engine = engine

    async def embed(
        self, req: EmbeddingRequest, *, model: str, probe: RequestProbe | None = None
    ) -> dict[str, Any]:
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
