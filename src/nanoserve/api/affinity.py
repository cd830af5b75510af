"""What a request says about which replica should serve it (``orchestrator/router.py`` decides).

A session is the ``X-Session-Id`` header, else the OpenAI ``user`` field; the prompt prefix is the
conversation's text as the model will read it, in order (role and content of each message, or
the completion prompt). Only worth computing for a model that has more than one replica.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.orchestrator.router import NO_AFFINITY, Affinity, prefix_blocks

SESSION_HEADER = "x-session-id"


def message_text(messages: Iterable[Any]) -> str:
    """The conversation as one string: each message's role and text content (dicts or models)."""
    parts = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else message.role
        content = message.get("content") if isinstance(message, dict) else message.content
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(f"{role}\x00{content or ''}\x00")
    return "".join(parts)


def affinity(
    orchestrator: Orchestrator,
    model: str,
    headers: Mapping[str, str],
    *,
    user: str | None = None,
    messages: Iterable[Any] | None = None,
    prompt: Any = None,
) -> Affinity:
    group = orchestrator.groups.get(orchestrator.registry.get(model).id)
    if group is None or len(group.replicas) < 2:
        return NO_AFFINITY
    session = headers.get(SESSION_HEADER) or user or None
    if session:
        return Affinity(session=session)
    text = message_text(messages) if messages is not None else prompt if isinstance(prompt, str) else ""
    return Affinity(prefix_blocks=prefix_blocks(text))
