"""Ollama requests → worker (OpenAI) bodies, and worker answers → Ollama lines: pure tables."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from nanoserve.api.ollama import convert
from nanoserve.api.ollama.models import expires_at, ollama_name
from nanoserve.api.ollama.protocol import ChatRequest, GenerateRequest, Options
from nanoserve.api.ollama.stream import Outcome, Reply, error_from_event, now_iso
from nanoserve.api.ollama.weights import human_number
from nanoserve.config import ModelConfig
from nanoserve.errors import BadRequest, ContextLengthExceeded, NanoserveError, NotFound, QueueFull
from nanoserve.orchestrator.instance import ModelView

CONFIG = ModelConfig(id="m", engine="mock", context_length=1024)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, convert.OLLAMA_DEFAULTS),
        ({"temperature": 0, "top_k": 1}, {**convert.OLLAMA_DEFAULTS, "temperature": 0.0, "top_k": 1}),
        ({"num_predict": 7}, {**convert.OLLAMA_DEFAULTS, "max_tokens": 7}),
        ({"num_predict": -1}, convert.OLLAMA_DEFAULTS),  # until the context is full
        ({"num_predict": -2}, convert.OLLAMA_DEFAULTS),
        ({"seed": -1}, convert.OLLAMA_DEFAULTS),  # random
        (
            {"seed": 42, "stop": ["\n", "user:"]},
            {**convert.OLLAMA_DEFAULTS, "seed": 42, "stop": ["\n", "user:"]},
        ),
        ({"stop": "END"}, {**convert.OLLAMA_DEFAULTS, "stop": ["END"]}),
        (
            {"repeat_penalty": 1.1, "min_p": 0.05},
            {**convert.OLLAMA_DEFAULTS, "repeat_penalty": 1.1, "min_p": 0.05},
        ),
        ({"num_ctx": 1024, "mirostat": 2, "num_gpu": 0}, convert.OLLAMA_DEFAULTS),  # accepted, nothing to do
    ],
)
def test_options_map_to_sampling_fields(options: dict[str, Any], expected: dict[str, Any]) -> None:
    assert convert.sampling(Options.model_validate(options), CONFIG, "m") == expected


def test_num_ctx_above_the_models_context_is_an_error() -> None:
    with pytest.raises(BadRequest) as info:
        convert.sampling(Options(num_ctx=4096), CONFIG, "m")
    assert info.value.param == "options.num_ctx" and "1024" in info.value.message


def test_generate_uses_the_chat_template_unless_raw() -> None:
    req = GenerateRequest(model="m", prompt="hi", system="be brief", context=[5, 6], stream=False)
    path, body = convert.generate_body(req, CONFIG)
    assert path == convert.CHAT_PATH
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert body["context"] == [5, 6] and body["return_context"] is True
    assert body["stream"] is False and "stream_options" not in body
    path, body = convert.generate_body(
        GenerateRequest(model="m", prompt="[INST] hi [/INST]", raw=True), CONFIG
    )
    assert path == convert.COMPLETION_PATH
    assert body["prompt"] == "[INST] hi [/INST]" and "return_context" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("json", {"type": "json_object"}),
        (
            {"type": "object"},
            {"type": "json_schema", "json_schema": {"name": "format", "schema": {"type": "object"}}},
        ),
    ],
)
def test_format_becomes_response_format(fmt: Any, expected: dict[str, Any]) -> None:
    body = convert.chat_body(
        ChatRequest(model="m", messages=[{"role": "user", "content": "x"}], format=fmt), CONFIG
    )
    assert body["response_format"] == expected


def test_images_become_data_url_parts() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 16).decode()
    msg = {"role": "user", "content": "what is this?", "images": [png, jpeg]}
    body = convert.chat_body(ChatRequest(model="m", messages=[msg]), CONFIG)
    text, first, second = body["messages"][0]["content"]
    assert text == {"type": "text", "text": "what is this?"}
    assert first["image_url"]["url"] == f"data:image/png;base64,{png}"
    assert second["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_tool_calls_get_openai_json_arguments() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "w", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "w"},
    ]
    body = convert.chat_body(ChatRequest(model="m", messages=messages), CONFIG)
    call = body["messages"][1]["tool_calls"][0]
    assert call["type"] == "function" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert body["messages"][2] == {"role": "tool", "content": "sunny", "name": "w"}


def test_worker_validation_names_the_ollama_field() -> None:
    with pytest.raises(BadRequest) as info:
        convert.chat_body(
            ChatRequest(model="m", messages=[{"role": "user", "content": "x"}], options={"temperature": 7}),
            CONFIG,
        )
    assert info.value.param == "options.temperature"


def test_reply_lines_and_final_metrics() -> None:
    reply = Reply("m:latest", chat=False, started=0.0, load_seconds=1.5)
    line = json.loads(reply.token_line('say "hi"\n', now_iso()))
    assert line["response"] == 'say "hi"\n' and line["done"] is False and line["created_at"].endswith("Z")
    chat_line = json.loads(Reply("m", chat=True, started=0.0, load_seconds=0).token_line("x", now_iso()))
    assert chat_line["message"] == {"role": "assistant", "content": "x"}
    outcome = Outcome(
        finish_reason="length",
        usage={"prompt_tokens": 3, "completion_tokens": 4},
        timings={"prompt_ms": 2.5, "predicted_ms": 40.0},
        context=[1, 2],
    )
    final = reply.final(outcome)
    assert final["done"] is True and final["done_reason"] == "length" and final["context"] == [1, 2]
    assert final["load_duration"] == 1_500_000_000
    assert (final["prompt_eval_count"], final["prompt_eval_duration"]) == (3, 2_500_000)
    assert (final["eval_count"], final["eval_duration"]) == (4, 40_000_000)


def test_whole_answers_translate_for_both_worker_routes() -> None:
    reply = Reply("m", chat=False, started=0.0, load_seconds=0)
    chat_answer = {
        "choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        "context": [9],
    }
    text_answer = {"choices": [{"text": "hello", "finish_reason": "stop"}], "usage": {}}
    assert reply.from_completion(chat_answer)["response"] == "hello"
    assert reply.from_completion(chat_answer)["context"] == [9]
    assert reply.from_completion(text_answer)["response"] == "hello"


@pytest.mark.parametrize(
    ("payload", "cls", "status"),
    [
        (
            {"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"},
            BadRequest,
            400,
        ),
        ({"message": "gone", "type": "invalid_request_error", "code": "model_not_found"}, NotFound, 404),
        ({"message": "busy", "type": "rate_limit_error", "code": "queue_full"}, QueueFull, 429),
        ({"message": "boom", "type": "server_error", "code": None}, NanoserveError, 500),
        ("not an object", NanoserveError, 500),
    ],
)
def test_in_stream_errors_keep_their_status(payload: Any, cls: type[NanoserveError], status: int) -> None:
    err = error_from_event(payload)
    assert isinstance(err, cls) and err.status == status
    assert not isinstance(err, ContextLengthExceeded)  # rebuilt without its constructor


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("smollm2:135m", "smollm2:135m"),
        ("all-minilm", "all-minilm:latest"),
        ("ns/model", "ns/model:latest"),
        ("host:5000/ns/model", "host:5000/ns/model:latest"),
    ],
)
def test_names_always_show_a_tag(name: str, shown: str) -> None:
    assert ollama_name(name) == shown


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (134_515_008, "134.52M"),
        (8_030_261_248, "8.0B"),
        (8_000_000_000, "8B"),
        (22_000_000, "22M"),
        (1500, "2K"),
        (999, "999"),
    ],
)
def test_parameter_sizes_read_like_ollamas(n: int, text: str) -> None:
    assert human_number(n) == text


def _view(expires: float | None, in_flight: int = 0) -> ModelView:
    return ModelView(
        id="m",
        state="ready",
        kind="chat",
        engine="mock",
        loaded_at=0.0,
        last_used=0.0,
        expires_at=expires,
        in_flight=in_flight,
        queued=0,
        priority=0,
        pinned=False,
        keep_alive=300.0,
        estimated_bytes=None,
        measured_bytes=None,
        vram_bytes=None,
        pid=1,
    )


def test_expiry_idle_busy_and_forever() -> None:
    assert expires_at(_view(60.0), CONFIG, now=0.0) == "1970-01-01T00:01:00.000000Z"
    assert expires_at(_view(None, in_flight=1), CONFIG, now=0.0) == "1970-01-01T00:05:00.000000Z"
    forever = ModelConfig(id="m", engine="mock", keep_alive=-1)
    assert expires_at(_view(None), forever, now=0.0).startswith("2262-")  # Go's time + MaxInt64 ns
