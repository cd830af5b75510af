"""Request bodies, error messages and the SSE accumulator, by tables of cases."""

from __future__ import annotations

import json

import httpx
import pytest

from nanoserve.bench.client import (
    RequestOptions,
    StreamAccumulator,
    error_message,
    normalize_base_url,
    request_body,
    send,
)
from nanoserve.bench.workload import Prompt


def chat(content: str | None = None, *, role: str | None = None, finish: str | None = None) -> str:
    delta: dict = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def text(value: str, finish: str | None = None) -> str:
    return json.dumps({"choices": [{"index": 0, "text": value, "finish_reason": finish}]})


def usage(prompt: int, completion: int) -> str:
    return json.dumps({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


def accumulate(
    endpoint: str, events: list[tuple[float, str]], *, max_tokens: int = 3, ignore_eos: bool = False
):
    acc = StreamAccumulator(endpoint, 0.0, max_tokens=max_tokens, ignore_eos=ignore_eos)  # type: ignore[arg-type]
    for now, payload in events:
        acc.feed(payload, now)
    return acc.finish(approx_prompt_tokens=11)


def test_chat_stream_timings() -> None:
    r = accumulate(
        "chat",
        [
            (0.05, chat(role="assistant")),  # role-only chunk: no token
            (0.10, chat("Hel")),
            (0.15, chat("lo")),
            (0.25, chat("!")),
            (0.26, chat(finish="stop")),
            (0.27, usage(7, 3)),
            (0.30, "[DONE]"),
        ],
    )
    assert r.success and not r.truncated
    assert r.ttft == pytest.approx(0.10)
    assert r.itl == pytest.approx([0.05, 0.10])
    assert r.latency == pytest.approx(0.25)  # to the last token chunk, not to [DONE]
    assert (r.output_tokens, r.prompt_tokens, r.usage_reported, r.finish_reason) == (3, 7, True, "stop")


def test_usage_wins_over_the_chunk_count() -> None:
    r = accumulate(
        "chat", [(0.1, chat("ab")), (0.2, chat("cd")), (0.3, usage(7, 5)), (0.4, "[DONE]")], max_tokens=5
    )
    assert r.output_tokens == 5 and len(r.itl) == 1


def test_without_usage_tokens_are_counted_as_chunks_and_prompt_is_estimated() -> None:
    r = accumulate(
        "chat", [(0.1, chat("a")), (0.2, chat("b")), (0.3, chat(finish="length")), (0.4, "[DONE]")]
    )
    assert (r.output_tokens, r.prompt_tokens, r.usage_reported) == (2, 11, False)


def test_completions_stream() -> None:
    r = accumulate(
        "completions", [(0.2, text(" a")), (0.3, text(" b")), (0.35, text("", "length")), (0.4, "[DONE]")]
    )
    assert r.success and r.ttft == pytest.approx(0.2) and r.latency == pytest.approx(0.3)
    assert r.output_tokens == 2


def test_usage_in_the_last_token_chunk_is_read() -> None:
    last = json.loads(chat("c", finish="stop"))
    last["usage"] = {"prompt_tokens": 4, "completion_tokens": 3}
    r = accumulate("chat", [(0.1, chat("a")), (0.2, chat("b")), (0.3, json.dumps(last)), (0.4, "[DONE]")])
    assert (r.output_tokens, r.prompt_tokens, len(r.itl)) == (3, 4, 2)


@pytest.mark.parametrize(
    ("events", "max_tokens", "ignore_eos", "truncated"),
    [
        ([(0.1, chat("a")), (0.2, chat("b"))], 3, False, True),  # no finish_reason, no [DONE]
        ([(0.1, chat("a")), (0.2, chat(finish="stop"))], 3, False, False),  # a finish_reason ends it
        ([(0.1, chat("a")), (0.2, "[DONE]")], 3, False, False),
        (
            [(0.1, chat("a")), (0.2, chat(finish="stop")), (0.3, "[DONE]")],
            3,
            True,
            True,
        ),  # short under ignore_eos
        ([(0.1, chat("a")), (0.2, usage(1, 3)), (0.3, "[DONE]")], 3, True, False),  # usage says all came
    ],
)
def test_truncation(events: list, max_tokens: int, ignore_eos: bool, truncated: bool) -> None:
    r = accumulate("chat", events, max_tokens=max_tokens, ignore_eos=ignore_eos)
    assert r.success and r.truncated is truncated


@pytest.mark.parametrize(
    ("events", "error"),
    [
        ([(0.1, chat("a")), (0.2, json.dumps({"error": {"message": "boom", "code": 500}}))], "boom"),
        ([(0.1, json.dumps({"error": "plain boom"}))], "plain boom"),
        ([(0.1, chat(role="assistant")), (0.2, chat(finish="stop")), (0.3, "[DONE]")], "no token"),
    ],
)
def test_failed_streams(events: list, error: str) -> None:
    r = accumulate("chat", events)
    assert not r.success and error in r.error


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            404,
            b'{"error": {"message": "The model x does not exist", "code": "model_not_found"}}',
            "HTTP 404: The model x does not exist",
        ),
        (404, b'{"error": "model \'x\' not found"}', "HTTP 404: model 'x' not found"),  # Ollama
        (404, b'{"detail": "Not Found"}', "HTTP 404: Not Found"),  # FastAPI
        (502, b"Bad Gateway", "HTTP 502: Bad Gateway"),
        (500, b"", "HTTP 500: no body"),
    ],
)
def test_error_message(status: int, body: bytes, expected: str) -> None:
    assert error_message(status, body) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000"),
        (" https://host/prefix/v1 ", "https://host/prefix"),
    ],
)
def test_normalize_base_url(url: str, expected: str) -> None:
    assert normalize_base_url(url) == expected


def test_normalize_base_url_needs_a_scheme() -> None:
    with pytest.raises(ValueError, match="http"):
        normalize_base_url("127.0.0.1:8000")


PROMPT = Prompt(texts=("hello there",), approx_tokens=2, max_tokens=9)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            RequestOptions("chat", "m"),
            {
                "model": "m",
                "messages": [{"role": "user", "content": "hello there"}],
                "max_tokens": 9,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ),
        (
            RequestOptions("completions", "m", ignore_eos=True, temperature=0.0),
            {
                "model": "m",
                "prompt": "hello there",
                "max_tokens": 9,
                "stream": True,
                "stream_options": {"include_usage": True},
                "ignore_eos": True,
                "temperature": 0.0,
            },
        ),
        (RequestOptions("embeddings", "e", ignore_eos=True), {"model": "e", "input": ["hello there"]}),
    ],
)
def test_request_body(options: RequestOptions, expected: dict) -> None:
    assert request_body(options, PROMPT) == expected


async def test_a_request_the_server_closed_unanswered_is_sent_again_once() -> None:
    """A kept-alive connection closed by the server before it answered: sent again, not failed."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) % 3 != 0:  # the 1st and 2nd fail, the 3rd answers: one retry per request
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        sse = "".join(f"data: {payload}\n\n" for payload in (chat("Hi"), chat(finish="stop"), "[DONE]"))
        return httpx.Response(200, content=sse.encode(), headers={"content-type": "text/event-stream"})

    options = RequestOptions(endpoint="chat", model="m")
    async with httpx.AsyncClient(
        base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handler)
    ) as client:
        failed = await send(client, options, Prompt(texts=("hello",), approx_tokens=1, max_tokens=1))
        answered = await send(client, options, Prompt(texts=("hello",), approx_tokens=1, max_tokens=1))
    assert len(calls) == 3
    assert not failed.success and "Server disconnected" in (failed.error or "")
    assert answered.success and answered.output_tokens == 1
