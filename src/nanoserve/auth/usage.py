"""Usage per key and model: requests, prompt and completion tokens (since the gateway started).

Counted when a response ends, from the request's record (``observability/requests.py`` reads
``usage`` from the answer's tail: nothing is parsed twice). Exposed as Prometheus counters in
``/metrics`` (labels ``key`` and ``model``) and as JSON at ``GET /admin/keys/usage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter

NO_MODEL = ""  # requests that used no model (RAG reads, admin calls)


@dataclass(slots=True)
class Tally:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    counters: tuple[Any, Any, Any] | None = None  # the key and model's Prometheus children


class KeyUsage:
    def __init__(self, registry: CollectorRegistry | None = None):
        self._tallies: dict[tuple[str, str], Tally] = {}
        self.requests = Counter(
            "nanoserve_key_requests",
            "Requests per API key and model (model is empty for requests that used none)",
            ["key", "model"],
            registry=registry,
        )
        self.tokens = Counter(
            "nanoserve_key_tokens",
            "Tokens per API key and model, by kind (prompt, completion)",
            ["key", "model", "kind"],
            registry=registry,
        )

    def record(self, key: str, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        tally = self._tallies.get((key, model))
        if tally is None:  # labels() looked up once per key and model, not on every request
            tally = self._tallies[(key, model)] = Tally()
            tally.counters = (
                self.requests.labels(key, model),
                self.tokens.labels(key, model, "prompt"),
                self.tokens.labels(key, model, "completion"),
            )
        requests, prompt, completion = tally.counters  # type: ignore[misc]
        tally.requests += 1
        requests.inc()
        if prompt_tokens:
            tally.prompt_tokens += prompt_tokens
            prompt.inc(prompt_tokens)
        if completion_tokens:
            tally.completion_tokens += completion_tokens
            completion.inc(completion_tokens)

    def snapshot(self) -> dict[str, Any]:
        """``{"keys": {name: {requests, prompt_tokens, completion_tokens, models: {...}}}}``."""
        keys: dict[str, Any] = {}
        for (key, model), tally in sorted(self._tallies.items()):
            entry = keys.setdefault(
                key, {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "models": {}}
            )
            entry["requests"] += tally.requests
            entry["prompt_tokens"] += tally.prompt_tokens
            entry["completion_tokens"] += tally.completion_tokens
            if model != NO_MODEL:
                entry["models"][model] = {
                    "requests": tally.requests,
                    "prompt_tokens": tally.prompt_tokens,
                    "completion_tokens": tally.completion_tokens,
                }
        return {"object": "key_usage", "keys": keys}
