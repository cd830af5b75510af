"""Send one benchmark request to an OpenAI-compatible server and time it.

Generation requests stream (``stream_options.include_usage``) and are timed chunk by chunk;
embeddings requests are timed to the last byte of the response. A request never raises: a
connection error, an HTTP error or an error event inside the stream comes back as a failed
``RequestResult`` carrying the status and the server's message, so one bad request cannot end a
run. One ``httpx.AsyncClient`` is shared by every request of a benchmark.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from nanoserve.bench.metrics import RequestResult
from nanoserve.bench.workload import Prompt

Endpoint = Literal["chat", "completions", "embeddings"]

PATHS: dict[Endpoint, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """What every request of a run shares."""

    endpoint: Endpoint
    model: str
    ignore_eos: bool = False
    temperature: float | None = None
    api_key: str | None = None


def normalize_base_url(url: str) -> str:
    """``http://host:8000/v1/`` and ``http://host:8000`` both become ``http://host:8000``."""
    url = url.strip().rstrip("/")
    url = url.removesuffix("/v1")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, got {url!r}")
    return url


def headers_for(options: RequestOptions) -> dict[str, str]:
    return {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}


def request_body(options: RequestOptions, prompt: Prompt) -> dict[str, Any]:
    body: dict[str, Any] = {"model": options.model}
    if options.endpoint == "embeddings":
        body["input"] = list(prompt.texts)
        return body
    if options.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt.text}]
    else:
        body["prompt"] = prompt.text
    body.update(max_tokens=prompt.max_tokens, stream=True, stream_options={"include_usage": True})
    if options.ignore_eos:
        body["ignore_eos"] = True
    if options.temperature is not None:
        body["temperature"] = options.temperature
    return body


def error_message(status: int, content: bytes) -> str:
    """The server's message from an OpenAI (``{"error": {"message"}}``) or plain error body."""
    text = content.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return f"HTTP {status}: {text[:300] or 'no body'}"
    error = data.get("error", data.get("detail")) if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message") or error
    return f"HTTP {status}: {error if error is not None else text[:300]}"


class StreamAccumulator:
    """Turns the ``data:`` payloads of one SSE stream into a ``RequestResult``.

    A token chunk is a choice carrying text (``delta.content``, ``delta.reasoning_content`` or
    ``delta.tool_calls`` for chat, ``text`` for completions). Role-only, finish-only and usage
    chunks advance nothing.
    """

    def __init__(self, endpoint: Endpoint, start: float, *, max_tokens: int, ignore_eos: bool):
        self._chat = endpoint == "chat"
        self._max_tokens = max_tokens
        self._ignore_eos = ignore_eos
        self.result = RequestResult(start_time=start)
        self._last: float | None = None
        self._chunks = 0
        self._done = False
        self._error: str | None = None

    def feed(self, payload: str, now: float) -> None:
        """One ``data:`` payload received at ``now`` (perf_counter seconds)."""
        if payload == "[DONE]":
            self._done = True
            return
        data = json.loads(payload)
        if not isinstance(data, dict):
            return
        if "error" in data:
            error = data["error"]
            self._error = str(error.get("message", error) if isinstance(error, dict) else error)
            return
        for choice in data.get("choices") or ():
            if self._is_token(choice):
                if self._last is None:
                    self.result.ttft = now - self.result.start_time
                else:
                    self.result.itl.append(now - self._last)
                self._last = now
                self._chunks += 1
            if reason := choice.get("finish_reason"):
                self.result.finish_reason = reason
        usage = data.get("usage")
        if isinstance(usage, dict):
            if (completion := usage.get("completion_tokens")) is not None:
                self.result.output_tokens = int(completion)
                self.result.usage_reported = True
            if (prompt := usage.get("prompt_tokens")) is not None:
                self.result.prompt_tokens = int(prompt)

    @property
    def has_tokens(self) -> bool:
        return self._last is not None

    def _is_token(self, choice: dict[str, Any]) -> bool:
        if not self._chat:
            return bool(choice.get("text"))
        delta = choice.get("delta") or {}
        return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls"))

    def finish(self, approx_prompt_tokens: int) -> RequestResult:
        result = self.result
        if self._error is not None:
            result.success = False
            result.error = f"error event in stream: {self._error}"
            return result
        if self._last is None:
            result.success = False
            result.error = "the stream carried no token"
            return result
        result.success = True
        result.latency = self._last - result.start_time
        if not result.usage_reported:
            result.output_tokens = self._chunks
        if not result.prompt_tokens:
            result.prompt_tokens = approx_prompt_tokens
        ended = self._done or result.finish_reason is not None
        short = self._ignore_eos and result.output_tokens < self._max_tokens
        result.truncated = not ended or short
        return result


async def send_generation(
    client: httpx.AsyncClient, options: RequestOptions, prompt: Prompt
) -> RequestResult:
    """Stream one chat/completions request and time every token chunk."""
    start = time.perf_counter()
    acc = StreamAccumulator(
        options.endpoint, start, max_tokens=prompt.max_tokens, ignore_eos=options.ignore_eos
    )
    try:
        async with client.stream(
            "POST", PATHS[options.endpoint], json=request_body(options, prompt), headers=headers_for(options)
        ) as response:
            if response.status_code != 200:
                content = await response.aread()
                return RequestResult(
                    start_time=start,
                    status=response.status_code,
                    error=error_message(response.status_code, content),
                )
            acc.result.status = 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    acc.feed(line[5:].strip(), time.perf_counter())
    except httpx.HTTPError as exc:
        if not acc.has_tokens:
            return _transport_failure(start, acc.result.status, exc)
        # The connection broke mid-stream: what arrived counts, flagged as truncated.
        result = acc.finish(prompt.approx_tokens)
        result.truncated = True
        result.error = _transport_failure(start, 200, exc).error
        return result
    except ValueError as exc:  # a payload that is not JSON
        return RequestResult(start_time=start, status=200, error=f"malformed stream: {exc}")
    return acc.finish(prompt.approx_tokens)


async def send_embeddings(
    client: httpx.AsyncClient, options: RequestOptions, prompt: Prompt
) -> RequestResult:
    """One embeddings request; latency runs to the last byte of the response."""
    start = time.perf_counter()
    try:
        response = await client.post(
            PATHS["embeddings"], json=request_body(options, prompt), headers=headers_for(options)
        )
    except httpx.HTTPError as exc:
        return _transport_failure(start, None, exc)
    latency = time.perf_counter() - start
    result = RequestResult(start_time=start, status=response.status_code, num_inputs=len(prompt.texts))
    if response.status_code != 200:
        result.error = error_message(response.status_code, response.content)
        return result
    try:
        data = response.json()
        vectors = data["data"]
        usage = data.get("usage") or {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        result.error = f"malformed embeddings response: {exc!r}"
        return result
    if len(vectors) != len(prompt.texts):
        result.error = f"asked for {len(prompt.texts)} embeddings, got {len(vectors)}"
        return result
    result.success = True
    result.ttft = result.latency = latency
    result.usage_reported = "prompt_tokens" in usage
    result.prompt_tokens = int(usage.get("prompt_tokens") or prompt.approx_tokens)
    return result


async def send(client: httpx.AsyncClient, options: RequestOptions, prompt: Prompt) -> RequestResult:
    """One request; sent again once if the server closed its kept-alive connection unanswered.

    Servers close idle or much-used keep-alive connections on their own schedule (llama-server
    after a few requests on one); a request that raced that close never reached the server, and
    counting it as failed would measure the client's connection pool, not the server.
    """
    sender = send_embeddings if options.endpoint == "embeddings" else send_generation
    result = await sender(client, options, prompt)
    if result.status is None and (result.error or "").startswith(_UNANSWERED):
        retried = await sender(client, options, prompt)
        lost = retried.start_time - result.start_time  # the client waited through both
        retried.start_time = result.start_time
        if retried.success:
            retried.ttft += lost
            retried.latency += lost
        return retried
    return result


_UNANSWERED = "RemoteProtocolError: Server disconnected without sending a response"


def _transport_failure(start: float, status: int | None, exc: httpx.HTTPError) -> RequestResult:
    detail = str(exc) or type(exc).__name__
    return RequestResult(start_time=start, status=status, error=f"{type(exc).__name__}: {detail}")
