"""Requests for servers that are not ours: what they are told, and what they cannot be asked.

Our workers take the client's bytes as they are (the gateway validated them once). A foreign
OpenAI-compatible server (``engine: command`` or ``engine: remote``) gets:

* ``model`` set to the name it expects (``upstream_model``);
* no gateway-only fields (``keep_alive``, ``priority``), and none of nanoserve's extension fields
  (``top_k``, ``min_p``, ``repeat_penalty``, ``ignore_eos``, ``return_context``) unless the model
  declares the server takes them (``extensions``);
* ``stream_options.include_usage`` when a stream asked for it (the Ollama routes always do, so
  their token counts work).

A request that needs a capability the server was not declared to have (``tools``,
``response_format``, image parts: ``vision``; Ollama's ``context`` tokens, which only our worker
understands) is a 400 before any model is loaded: never silently dropped.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from nanoserve.config import ModelConfig
from nanoserve.errors import BadRequest, ConfigError, UnsupportedFeature
from nanoserve.profiles.foreign import EXTENSIONS, ForeignOptions

GATEWAY_FIELDS = ("keep_alive", "priority")
IMAGE_PARTS = ("image_url", "input_image", "image")


O = TypeVar("O", bound=BaseModel)


def parse_options(cls: type[O], config: ModelConfig) -> O:
    """A model's ``options`` as ``cls``; a ``ConfigError`` naming the model and each bad field."""
    try:
        return cls.model_validate(config.options)
    except ValidationError as exc:
        problems = "; ".join(
            f"options.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"model '{config.id}' (engine {config.engine}): {problems}") from None


class Passthrough:
    """Our own workers: the client's bytes, untouched."""

    def prepare(self, path: str, body: bytes) -> bytes:
        return body


class ForeignRequests:
    def __init__(self, model_id: str, options: ForeignOptions):
        self.model_id = model_id
        self.upstream_model = options.upstream_model or model_id
        self.capabilities = frozenset(options.capabilities)
        self.drop = frozenset(GATEWAY_FIELDS) | (frozenset(EXTENSIONS) - frozenset(options.extensions))

    def prepare(self, path: str, body: bytes) -> bytes:
        try:
            data: dict[str, Any] = json.loads(body)
        except ValueError as exc:  # the gateway validated it: a bug if this happens
            raise BadRequest(f"Request body is not valid JSON: {exc}") from exc
        self._check(data)
        data["model"] = self.upstream_model
        data.pop("context", None)  # empty, or _check refused it
        for name in self.drop.intersection(data):
            del data[name]
        return json.dumps(data, ensure_ascii=False).encode()

    def _check(self, data: dict[str, Any]) -> None:
        def lacks(capability: str, param: str, what: str) -> None:
            if capability not in self.capabilities:
                raise UnsupportedFeature(
                    f"model '{self.model_id}' is served by a backend not declared to support {what} "
                    f"(add '{capability}' to its options.capabilities if it does)",
                    param=param,
                )

        if data.get("tools"):
            lacks("tools", "tools", "tool calling")
        if data.get("tool_choice") not in (None, "none", "auto") and not data.get("tools"):
            lacks("tools", "tool_choice", "tool calling")
        fmt = data.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type", "text") != "text":
            lacks("response_format", "response_format", f"response_format {fmt.get('type')}")
        if data.get("context"):
            raise UnsupportedFeature(
                f"model '{self.model_id}' is served by a backend that does not take Ollama's "
                "'context' tokens; send the conversation as messages (/api/chat) instead",
                param="context",
            )
        for message in data.get("messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list) and any(
                isinstance(p, dict) and p.get("type") in IMAGE_PARTS for p in content
            ):
                lacks("vision", "messages", "image input")
