"""The plain streaming path's writes: one per token, the role chunk with the first token, and the end
(finish reason, usage, ``[DONE]``) in one more; the events inside are those OpenAI clients parse."""

from __future__ import annotations

import asyncio
import json

from nanoserve.engines.base import EngineSpec, GenerationRequest, SamplingParams
from nanoserve.engines.mock import MockEngine
from nanoserve.worker.serving import GenerationService


async def _writes(*, chat: bool, include_usage: bool, max_tokens: int = 5) -> list[bytes]:
    engine = MockEngine(EngineSpec(name="m", path=None, context_length=512))
    await engine.start()
    gen = GenerationRequest(prompt="a b c", params=SamplingParams(max_tokens=max_tokens), request_id="r1")
    service = GenerationService(engine)
    return [w async for w in service.stream(gen, model="m", chat=chat, include_usage=include_usage)]


def _events(write: bytes) -> list[str]:
    text = write.decode()
    assert text.startswith("data: ") and text.endswith("\n\n")
    return [e.removeprefix("data: ") for e in text.removesuffix("\n\n").split("\n\n")]


async def test_chat_stream_writes() -> None:
    writes = await _writes(chat=True, include_usage=True)
    assert len(writes) == 6  # one per token, one for the end
    first = [json.loads(e) for e in _events(writes[0])]
    assert [c["choices"][0]["delta"] for c in first] == [
        {"role": "assistant", "content": ""},
        {"content": first[1]["choices"][0]["delta"]["content"]},
    ]
    for write in writes[1:-1]:
        (event,) = _events(write)
        assert json.loads(event)["choices"][0]["finish_reason"] is None
    *body, done = _events(writes[-1])
    assert done == "[DONE]"
    chunks = [json.loads(e) for e in body]
    assert len(chunks) == 2
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    ids = {json.loads(e)["id"] for w in writes for e in _events(w) if e != "[DONE]"}
    assert ids == {"chatcmpl-r1"}


async def test_completion_stream_writes_without_usage() -> None:
    writes = await _writes(chat=False, include_usage=False, max_tokens=1)
    token, end = writes
    (event,) = _events(token)
    assert json.loads(event)["choices"][0]["text"]
    final, done = _events(end)
    assert json.loads(final)["choices"][0]["finish_reason"] == "length"
    assert done == "[DONE]"


async def test_stream_error_still_ends_with_done() -> None:
    engine = MockEngine(EngineSpec(name="m", path=None, context_length=8))
    await engine.start()
    gen = GenerationRequest(prompt="a b c", params=SamplingParams(max_tokens=50), request_id="r2")
    writes = [
        w async for w in GenerationService(engine).stream(gen, model="m", chat=True, include_usage=True)
    ]
    assert "error" in json.loads(_events(writes[0])[0])
    assert writes[-1] == b"data: [DONE]\n\n"


async def test_llamacpp_inbox_hands_over_in_order() -> None:
    from nanoserve.engines.llamacpp.engine import _Inbox

    loop = asyncio.get_running_loop()
    inbox = _Inbox(loop)
    getter = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    loop.call_soon_threadsafe(inbox.put, [1, 2])  # type: ignore[list-item]
    assert await getter == [1, 2]
    inbox.put([3])  # type: ignore[list-item]
    inbox.put([4])  # type: ignore[list-item]
    assert await inbox.get() == [3, 4]
