"""Deployment profiles (``profile: local`` or ``profile: cloud``): presets beneath explicit values.

Seed 004 runs one service two ways: a single user on a workstation (lowest latency) and many
sessions in the cloud (throughput). A profile is a table of settings applied beneath everything
the file, the environment and the command line set; per model by kind and, for the llama.cpp
engine, its options (``models.N.options``). On the built-in models, whose values are defaults
too, the profile's values apply; on the models a config lists, only where the entry is silent.

    local   bind loopback; chat models 2 slots, embedding models 4; models never unloaded when
            idle (keep_alive -1); llama.cpp: a lone prompt is prefilled whole (prefill_chunk 512,
            the lowest time to first token) but in chunks of 32 tokens while others are decoding
            (prefill_budget), so a second request barely slows the first one's stream
    cloud   bind every interface, API keys required (serving starts only when a key exists);
            chat models 16 slots, embedding models 32; llama.cpp: steps of up to 1024 tokens
            (n_batch) taking 512 prompt tokens while others decode; JSON logs; traces to an
            OpenTelemetry collector on 127.0.0.1:4318 (override observability.otlp_endpoint);
            /metrics is always on
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from nanoserve.auth.hosts import is_loopback
from nanoserve.layers import Layers

ProfileName = Literal["local", "cloud"]


@dataclass(frozen=True)
class Profile:
    summary: str
    settings: dict[str, Any]
    models: dict[str, dict[str, Any]]  # by kind (chat, embedding)
    engine_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # by engine


PROFILES: dict[str, Profile] = {
    "local": Profile(
        summary="one user, lowest latency",
        settings={"host": "127.0.0.1", "log_format": "text"},
        models={
            "chat": {"parallel": 2, "keep_alive": -1},
            "embedding": {"parallel": 4, "keep_alive": -1},
        },
        engine_options={"llamacpp": {"n_batch": 512, "prefill_chunk": 512, "prefill_budget": 32}},
    ),
    "cloud": Profile(
        summary="many sessions, throughput, behind a load balancer",
        settings={
            "host": "0.0.0.0",  # every interface: refused without API keys (profile_problem)
            "auth": {"required": True},
            "log_format": "json",
            "observability": {"otlp_endpoint": "http://127.0.0.1:4318"},
        },
        models={"chat": {"parallel": 16}, "embedding": {"parallel": 32}},
        engine_options={"llamacpp": {"n_batch": 1024, "prefill_chunk": 256, "prefill_budget": 512}},
    ),
}


def apply_profile(
    layers: Layers, name: str, models: list[dict[str, Any]], *, listed: bool, default_model: dict[str, Any]
) -> list[dict[str, Any]]:
    """Put profile ``name``'s settings beneath ``layers`` and return ``models`` with its model
    presets: filled in where an entry is silent when the config ``listed`` them, set otherwise
    (the built-in models' values are defaults). ``default_model``: a model entry's defaults
    (kind, engine)."""
    profile = PROFILES[name]
    origin = f"profile {name}"
    layers.put(profile.settings, origin)
    out = []
    for i, entry in enumerate(models):
        entry = {**entry, "options": dict(entry.get("options") or {})}
        kind = entry.get("kind", default_model["kind"])
        engine = entry.get("engine", default_model["engine"])
        presets = [((key,), value) for key, value in profile.models.get(kind, {}).items()]
        presets += [(("options", key), v) for key, v in profile.engine_options.get(engine, {}).items()]
        for path, value in presets:
            holder = entry if len(path) == 1 else entry["options"]
            if listed and path[-1] in holder:
                continue
            holder[path[-1]] = value
            layers.origins[("models", str(i), *path)] = origin
        out.append(entry)
    return out


def profile_problem(
    profile: str | None, host: str, *, auth_required: bool, has_keys: Callable[[], bool]
) -> str | None:
    """Why the cloud profile refuses to serve, or None: beyond loopback it serves with API keys
    only (required, and at least one to use), whatever ``--insecure-no-auth`` says. ``has_keys`` is
    asked only when it matters."""
    if profile != "cloud" or is_loopback(host):
        return None
    if not auth_required:
        return (
            f"profile cloud: refusing to bind {host} without API keys: auth.required is off (the "
            "profile turns it on; the file, NANOSERVE_AUTH__REQUIRED or the command line turned it "
            "off). Turn it back on, or bind loopback (--host 127.0.0.1)"
        )
    if not has_keys():
        return (
            f"profile cloud: refusing to bind {host}: API keys are required but none exists, so "
            "nobody could use it. Create one with `nanoserve keys create NAME --scope inference` "
            "(same data dir), or set the bootstrap key variable (auth.bootstrap_key_env, by "
            "default NANOSERVE_BOOTSTRAP_KEY)"
        )
    return None
