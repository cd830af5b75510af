"""Chat prompts through the model's own Jinja template (``tokenizer.chat_template`` in the GGUF).

Rendered the way Hugging Face Transformers and llama-cpp-python's ``Jinja2ChatFormatter`` do: a
sandboxed environment with ``trim_blocks``/``lstrip_blocks``, the ``bos_token``/``eos_token``
strings, ``add_generation_prompt``, ``tools``, ``raise_exception`` and ``strftime_now``. Pure:
no llama_cpp import.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from nanoserve.errors import BadRequest, ConfigError, UnsupportedFeature

# Used when a GGUF file carries no template: ChatML, which most small instruct models follow.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class _GenerationTag(jinja2.ext.Extension):
    """Pass-through for Transformers' ``{% generation %}`` tag (marks assistant spans)."""

    tags = {"generation"}  # noqa: RUF012 (jinja2 types it as an instance attribute)

    def parse(self, parser: Any) -> Any:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise_exception(message: str) -> None:
    raise BadRequest(f"chat template: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _text_content(message: dict[str, Any]) -> dict[str, Any]:
    """OpenAI content parts flattened to the string templates expect; images are refused."""
    content = message.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text", "")))
            else:
                raise UnsupportedFeature(f"content part of type {kind!r} is not supported by this model")
        return {**message, "content": "".join(texts)}
    if content is None:
        return {**message, "content": ""}
    return message


class ChatTemplate:
    """A compiled chat template with the model's special token strings."""

    def __init__(self, source: str, *, bos_token: str, eos_token: str):
        env = ImmutableSandboxedEnvironment(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_GenerationTag, jinja2.ext.loopcontrols],
        )
        env.filters["tojson"] = _tojson
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"chat template does not compile: {exc}") from exc
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        try:
            return self._template.render(
                messages=[_text_content(m) for m in messages],
                tools=list(tools) if tools else None,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                add_generation_prompt=add_generation_prompt,
                raise_exception=_raise_exception,
                strftime_now=_strftime_now,
            )
        except jinja2.TemplateError as exc:
            raise BadRequest(f"chat template failed on these messages: {exc}") from exc
