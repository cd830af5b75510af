"""Ollama requests → the workers' OpenAI request bodies. Pure functions, no I/O.

``/api/chat`` becomes ``/v1/chat/completions``. ``/api/generate`` becomes a chat request with
the system and user messages (the worker renders them through the model's chat template), or
with ``raw`` a ``/v1/completions`` request with the prompt as is. ``options`` map to OpenAI's
sampling fields plus nanoserve's extras (``top_k``, ``min_p``, ``repeat_penalty``); sampling
fields the client leaves out get Ollama's defaults, so an Ollama client sees Ollama's behaviour.
The body is validated with the worker's own protocol models, so a bad value is a 400 naming the
Ollama field before any worker is involved.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ValidationError

from nanoserve.api.ollama.protocol import ChatRequest, GenerateRequest, Message, Options
from nanoserve.config import ModelConfig
from nanoserve.errors import BadRequest, UnsupportedFeature
from nanoserve.wire.protocol import ChatCompletionRequest, CompletionRequest

CHAT_PATH = "/v1/chat/completions"
COMPLETION_PATH = "/v1/completions"
EMBEDDING_PATH = "/v1/embeddings"

# Ollama's api.DefaultOptions() for the sampling fields nanoserve maps.
OLLAMA_DEFAULTS: dict[str, Any] = {"temperature": 0.8, "top_k": 40, "top_p": 0.9}

# worker field -> the Ollama field it came from (to name the right field in errors)
_OLLAMA_NAME = {
    "max_tokens": "options.num_predict",
    "temperature": "options.temperature",
    "top_p": "options.top_p",
    "top_k": "options.top_k",
    "min_p": "options.min_p",
    "repeat_penalty": "options.repeat_penalty",
    "presence_penalty": "options.presence_penalty",
    "frequency_penalty": "options.frequency_penalty",
    "seed": "options.seed",
    "stop": "options.stop",
}

_IMAGE_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


def sampling(options: Options, config: ModelConfig, name: str) -> dict[str, Any]:
    """The worker's sampling fields for Ollama ``options`` (unset ones get Ollama's defaults)."""
    if options.num_ctx is not None and options.num_ctx > config.context_length:
        raise BadRequest(
            f"num_ctx {options.num_ctx} exceeds the context of model '{name}' "
            f"({config.context_length} tokens per sequence); nanoserve does not reload a model for "
            "a larger context: raise context_length in the model's config",
            param="options.num_ctx",
        )
    body: dict[str, Any] = dict(OLLAMA_DEFAULTS)
    for field in (
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
    ):
        value = getattr(options, field)
        if value is not None:
            body[field] = value
    if options.num_predict is not None and options.num_predict > 0:
        body["max_tokens"] = options.num_predict  # <= 0: until the context is full (Ollama: -1, -2)
    if options.seed is not None and options.seed >= 0:
        body["seed"] = options.seed  # -1: random
    if options.stop:
        body["stop"] = options.stop
    return body


def _check_common(req: ChatRequest | GenerateRequest, name: str) -> dict[str, Any]:
    """Fields common to chat and generate: think, logprobs, format."""
    if req.think not in (None, False, ""):
        raise UnsupportedFeature(f'"{name}" does not support thinking', param="think")
    if req.logprobs:
        raise UnsupportedFeature("logprobs are not supported yet", param="logprobs")
    body: dict[str, Any] = {}
    fmt = req.format
    if fmt == "json":
        body["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}
    elif fmt not in (None, ""):
        raise BadRequest(f'invalid format {fmt!r}: expected "json" or a JSON schema', param="format")
    return body


def image_part(data: str, param: str) -> dict[str, Any]:
    """An Ollama base64 image as an OpenAI ``image_url`` content part (a data URL)."""
    try:
        head = base64.b64decode(data, validate=True)[:16]
    except (binascii.Error, ValueError):
        raise BadRequest(f"Invalid value for '{param}': images must be base64-encoded", param=param) from None
    mime = next((m for magic, m in _IMAGE_MAGIC if head.startswith(magic)), "image/png")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def _content(text: str, images: list[str] | None, param: str) -> str | list[dict[str, Any]]:
    if not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    return parts + [image_part(image, f"{param}.images.{i}") for i, image in enumerate(images)]


def _tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama tool calls (arguments as an object) in OpenAI's shape (arguments as a JSON string)."""
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        out.append(
            {
                "id": call.get("id") or f"call_{i}",
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
        )
    return out


def message(msg: Message, index: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": msg.role,
        "content": _content(msg.content, msg.images, f"messages.{index}"),
    }
    if msg.tool_calls:
        out["tool_calls"] = _tool_calls(msg.tool_calls)
    if msg.role == "tool":
        if msg.tool_call_id:
            out["tool_call_id"] = msg.tool_call_id
        if msg.tool_name:
            out["name"] = msg.tool_name
    return out


def chat_body(req: ChatRequest, config: ModelConfig) -> dict[str, Any]:
    body = _check_common(req, req.model)
    body.update(sampling(req.options, config, req.model))
    body["model"] = req.model
    body["messages"] = [message(m, i) for i, m in enumerate(req.messages)]
    if req.tools:
        body["tools"] = req.tools
    _stream_fields(body, req.streaming)
    return _validated(body, ChatCompletionRequest)


def generate_body(req: GenerateRequest, config: ModelConfig) -> tuple[str, dict[str, Any]]:
    """The worker path and body for a (non-empty) ``/api/generate`` request."""
    if req.raw and (req.template or req.system or req.context):
        raise BadRequest("raw mode does not support template, system, or context", param="raw")
    if req.suffix:
        raise UnsupportedFeature(f'"{req.model}" does not support insert', param="suffix")
    if req.template:
        raise UnsupportedFeature(
            "template overrides are not supported: nanoserve renders the model's own chat template; "
            "send a fully formatted prompt with raw: true instead",
            param="template",
        )
    body = _check_common(req, req.model)
    body.update(sampling(req.options, config, req.model))
    body["model"] = req.model
    _stream_fields(body, req.streaming)
    if req.raw:
        if req.images:
            raise UnsupportedFeature(
                "images cannot be sent with raw: true (they go through the model's chat template)",
                param="images",
            )
        body["prompt"] = req.prompt
        return COMPLETION_PATH, _validated(body, CompletionRequest)
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": req.system})
    messages.append({"role": "user", "content": _content(req.prompt, req.images, "prompt")})
    body["messages"] = messages
    if req.context:
        body["context"] = req.context
    body["return_context"] = True
    return CHAT_PATH, _validated(body, ChatCompletionRequest)


def _stream_fields(body: dict[str, Any], streaming: bool) -> None:
    body["stream"] = streaming
    if streaming:
        body["stream_options"] = {"include_usage": True}


def _validated(body: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """``body`` unchanged if the worker will accept it; else a 400 naming the Ollama field."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        param = _OLLAMA_NAME.get(loc[0], ".".join(loc)) if loc else None
        raise BadRequest(f"Invalid value for '{param}': {err['msg']}", param=param) from None
    return body
