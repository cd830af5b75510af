"""The workers' OpenAI answers → Ollama's: NDJSON lines when streaming, one object when not.

Each SSE event is parsed once (``json.loads``); a token becomes one line formatted from a
prebuilt prefix. The last line carries ``done``, ``done_reason`` and Ollama's counts and
durations (nanoseconds): tokens and engine timings from the worker's ``usage`` and ``timings``,
``load_duration`` from the time the gateway spent getting a ready worker, ``total_duration``
from the request's arrival. An error event from the worker is raised as a typed error, so an
error before the first token gets its HTTP status and one after it an ``{"error": ...}`` line.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nanoserve import errors as e
from nanoserve.api.proxy import Upstream
from nanoserve.observability import requests

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop"}

# OpenAI error (type, code) -> our exception class, for errors that arrive inside a stream
_BY_CODE: dict[str, type[e.NanoserveError]] = {
    "model_not_found": e.ModelNotFound,
    "not_found": e.NotFound,
    "payload_too_large": e.PayloadTooLarge,
    "context_length_exceeded": e.BadRequest,
    "unsupported_feature": e.UnsupportedFeature,
    "worker_unavailable": e.WorkerUnavailable,
}
_BY_TYPE: dict[str, type[e.NanoserveError]] = {
    "invalid_request_error": e.BadRequest,
    "rate_limit_error": e.QueueFull,
    "conflict_error": e.Conflict,
    "service_unavailable": e.Unavailable,
    "insufficient_storage": e.InsufficientMemory,
}


def now_iso() -> str:
    """Ollama's ``created_at``: RFC 3339 in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ndjson(obj: dict[str, Any]) -> bytes:
    return _dumps(obj).encode() + b"\n"


def error_from_event(payload: Any) -> e.NanoserveError:
    """A typed error from an OpenAI error object received inside a stream."""
    if not isinstance(payload, dict):
        return e.EngineError(str(payload))
    cls = _BY_CODE.get(str(payload.get("code")), _BY_TYPE.get(str(payload.get("type")), e.NanoserveError))
    err = cls.__new__(cls)
    e.NanoserveError.__init__(err, str(payload.get("message") or "unknown error"), param=payload.get("param"))
    return err


@dataclass
class Outcome:
    """What the worker reported at the end of a generation."""

    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    context: list[int] | None = None

    def absorb(self, event: dict[str, Any]) -> None:
        if usage := event.get("usage"):
            self.usage = usage
        if timings := event.get("timings"):
            self.timings = timings
        if (context := event.get("context")) is not None:
            self.context = context


class Reply:
    """The Ollama shape of one generation's answer: ``/api/chat`` or ``/api/generate``."""

    def __init__(self, model: str, *, chat: bool, started: float, load_seconds: float):
        self.model = model
        self.chat = chat
        self.started = started
        self.load_seconds = load_seconds
        head = '{"model":' + _dumps(model) + ',"created_at":"'
        self._token_head = head
        self._token_mid = '","message":{"role":"assistant","content":' if chat else '","response":'
        self._token_tail = '},"done":false}\n' if chat else ',"done":false}\n'

    def token_line(self, text: str, created_at: str) -> str:
        return self._token_head + created_at + self._token_mid + _dumps(text) + self._token_tail

    def final(self, outcome: Outcome, text: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "created_at": now_iso()}
        if self.chat:
            body["message"] = {"role": "assistant", "content": text}
        else:
            body["response"] = text
        body["done"] = True
        body["done_reason"] = DONE_REASONS.get(outcome.finish_reason or "stop", outcome.finish_reason)
        if not self.chat and outcome.context is not None:
            body["context"] = outcome.context
        body["total_duration"] = _ns(time.perf_counter() - self.started)
        body["load_duration"] = _ns(self.load_seconds)
        if outcome.usage:
            body["prompt_eval_count"] = outcome.usage.get("prompt_tokens", 0)
        if "prompt_ms" in outcome.timings:
            body["prompt_eval_duration"] = _ns(outcome.timings["prompt_ms"] / 1000)
        if outcome.usage:
            body["eval_count"] = outcome.usage.get("completion_tokens", 0)
        if "predicted_ms" in outcome.timings:
            body["eval_duration"] = _ns(outcome.timings["predicted_ms"] / 1000)
        return body

    def from_completion(self, answer: dict[str, Any]) -> dict[str, Any]:
        """A whole (non-streamed) worker answer as Ollama's single response object."""
        choice = (answer.get("choices") or [{}])[0]
        text = choice["message"].get("content") if "message" in choice else choice.get("text")
        outcome = Outcome(finish_reason=choice.get("finish_reason"))
        outcome.absorb(answer)
        return self.final(outcome, text or "")


def _ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


async def lines(upstream: Upstream, reply: Reply) -> AsyncGenerator[bytes, None]:
    """The worker's SSE stream as Ollama NDJSON lines, ending with the final line.

    Lines are yielded per chunk received: one token's line as soon as it arrives, or, when the
    worker is ahead of the client, every token that arrived together in one write. Raises the
    worker's in-band error (typed) and ``WorkerUnavailable`` if the connection breaks; the
    caller decides whether that becomes an HTTP status or an error line.
    """
    outcome = Outcome()
    pending = b""
    finished = False
    record = requests.current()  # observability: first token time, usage
    try:
        async for chunk in upstream.response.chunks():
            *complete, pending = (pending + chunk).split(b"\n")
            out: list[str] = []
            created_at = ""
            error: e.NanoserveError | None = None
            for line in complete:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    finished = True
                    break
                event = json.loads(data)
                if "error" in event:
                    error = error_from_event(event["error"])
                    break
                choices = event.get("choices")
                if choices:
                    choice = choices[0]
                    text = choice["delta"].get("content") if "delta" in choice else choice.get("text")
                    if text:
                        created_at = created_at or now_iso()
                        out.append(reply.token_line(text, created_at))
                    if choice.get("finish_reason"):
                        outcome.finish_reason = choice["finish_reason"]
                if "usage" in event:
                    outcome.absorb(event)
            if out:
                if record is not None and record.first_byte is None:
                    record.first_chunk()
                yield "".join(out).encode()
            if error is not None:
                raise error
            if finished:
                break
    except e.WorkerUnavailable as exc:
        raise upstream.gone(exc) from exc
    except ValueError as exc:
        raise e.EngineError(f"the worker sent an invalid stream event: {exc}") from exc
    if outcome.finish_reason is None:
        model = upstream.lease.instance.id
        raise e.WorkerUnavailable(f"the worker for model '{model}' ended the stream early")
    if record is not None and outcome.usage:
        record.took_usage(outcome.usage)
    yield ndjson(reply.final(outcome))
