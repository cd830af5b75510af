"""The workers' OpenAI answers → Ollama's: NDJSON lines when streaming, one object when not.

Each SSE event is parsed once (``json.loads``); a token becomes one line formatted from a
prebuilt prefix. The last line carries ``done``, ``done_reason`` and Ollama's counts and
durations (nanoseconds): tokens and engine timings from the worker's ``usage`` and ``timings``,
``load_duration`` from the time the gateway spent getting a ready worker, ``total_duration``
from the request's arrival. An error event from the worker is raised as a typed error, so an
error before the first token gets its HTTP status and one after it an ``{"error": ...}`` line.
Tool calls arrive as OpenAI ``tool_calls`` deltas; they are put together and sent as Ollama does,
all in one ``message.tool_calls`` line (arguments as objects) before the final line.
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

    def tool_calls_line(self, calls: list[dict[str, Any]]) -> str:
        """Ollama sends a turn's tool calls together, in one line before the final one."""
        message = {"role": "assistant", "content": "", "tool_calls": ollama_tool_calls(calls)}
        return (
            _dumps({"model": self.model, "created_at": now_iso(), "message": message, "done": False}) + "\n"
        )

    def final(
        self, outcome: Outcome, text: str = "", tool_calls: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "created_at": now_iso()}
        if self.chat:
            body["message"] = {"role": "assistant", "content": text}
            if tool_calls:
                body["message"]["tool_calls"] = ollama_tool_calls(tool_calls)
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
        message = choice.get("message")
        text = message.get("content") if message is not None else choice.get("text")
        outcome = Outcome(finish_reason=choice.get("finish_reason"))
        outcome.absorb(answer)
        return self.final(outcome, text or "", (message or {}).get("tool_calls"))


def ollama_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls (arguments as JSON text) in Ollama's shape (arguments as an object)."""
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            raise e.EngineError(
                f"the worker sent tool call arguments that are not JSON: {function!r}"
            ) from None
        out.append(
            {
                "id": call.get("id"),
                "function": {"index": i, "name": function.get("name", ""), "arguments": arguments},
            }
        )
    return out


def _add_call_deltas(calls: dict[int, dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    for delta in deltas:
        call = calls.setdefault(
            int(delta.get("index", 0)), {"id": None, "function": {"name": "", "arguments": ""}}
        )
        if delta.get("id"):
            call["id"] = delta["id"]
        function = delta.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""


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
    calls: dict[int, dict[str, Any]] = {}  # OpenAI tool-call deltas, put together
    pending = b""
    finished = False
    record = requests.current()  # observability: first token time, usage
    try:
        async for chunk in upstream.chunks():
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
                    delta = choice.get("delta")
                    text = delta.get("content") if delta is not None else choice.get("text")
                    if text:
                        created_at = created_at or now_iso()
                        out.append(reply.token_line(text, created_at))
                    if delta is not None and delta.get("tool_calls"):
                        _add_call_deltas(calls, delta["tool_calls"])
                    if choice.get("finish_reason"):
                        outcome.finish_reason = choice["finish_reason"]
                        if calls:
                            out.append(reply.tool_calls_line([calls[i] for i in sorted(calls)]))
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
        model = upstream.sent.lease.instance.id
        raise e.WorkerUnavailable(f"the worker for model '{model}' ended the stream early")
    if record is not None and outcome.usage:
        record.took_usage(outcome.usage)
    yield ndjson(reply.final(outcome))
