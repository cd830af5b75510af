"""A request's lifecycle controls (``keep_alive``, ``priority``), the same on every API dialect.

Ollama clients send ``keep_alive`` in the body; OpenAI clients may send ``keep_alive`` and
``priority`` as extra body fields or as the headers ``X-Keep-Alive`` and ``X-Priority`` (a body
field wins over its header). Durations are seconds or Go-style strings ("10m", "1h30m"); a
negative value keeps the model loaded forever and 0 unloads it as soon as the request is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nanoserve.config import parse_duration
from nanoserve.errors import BadRequest

KEEP_ALIVE_HEADER = "x-keep-alive"
PRIORITY_HEADER = "x-priority"
UNLOAD_NOW = 0.0


@dataclass(frozen=True, slots=True)
class Controls:
    """None keeps the model's configured value."""

    keep_alive: float | None = None  # seconds; -1 forever; 0 unload after this request
    priority: int | None = None

    @property
    def unload_after(self) -> bool:
        return self.keep_alive == UNLOAD_NOW


def _keep_alive(value: Any, param: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadRequest(f"Invalid value for '{param}': {exc}", param=param) from None


def _priority(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest(f"Invalid value for '{param}': expected an integer, got a boolean", param=param)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        message = f"Invalid value for '{param}': expected an integer, got {value!r}"
        raise BadRequest(message, param=param) from None


def controls(
    keep_alive: Any = None, priority: Any = None, headers: Mapping[str, str] | None = None
) -> Controls:
    """The request's controls from its body fields, falling back to its headers; bad values are a 400."""
    headers = headers or {}
    if keep_alive is not None:
        alive = _keep_alive(keep_alive, "keep_alive")
    else:
        alive = _keep_alive(headers.get(KEEP_ALIVE_HEADER), "X-Keep-Alive")
    if priority is not None:
        prio = _priority(priority, "priority")
    else:
        prio = _priority(headers.get(PRIORITY_HEADER), "X-Priority")
    return Controls(keep_alive=alive, priority=prio)
