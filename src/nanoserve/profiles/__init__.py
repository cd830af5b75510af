"""Engine profiles: the facts about an engine that the gateway needs, registered under its name.

A profile (``EngineProfile``) declares the kinds an engine serves, the Python package it needs,
how to check a source path (``/ready``), its options model, its capabilities and how much memory a
model takes before its first load (the estimate). The gateway reads profiles through
``profile_for(engine)`` and never imports ``nanoserve.engines`` or ``nanoserve.worker``; an engine
it knows nothing about gets ``DEFAULT_PROFILE`` (runtime baseline only, no source check).

Why a package of its own, outside ``engines/``: importing anything under ``nanoserve.engines``
is what the gateway must never do, and the engines' heavy modules (llama_cpp, torch) sit there.
The dependency points one way: engines import their profile (options model, served weights,
capabilities), profiles import no engine. Profile modules are import-light: the standard
library, pydantic and nanoserve's light modules (``errors``, ``sources``; ``models.gguf`` only
inside functions that read a header).

A third-party engine registers both halves from its own package::

    from nanoserve.engines import register_engine
    from nanoserve.profiles import EngineProfile, register_profile

    register_engine("onnx", "my_pkg.engine:OnnxEngine")
    register_profile(EngineProfile(name="onnx", kinds=frozenset({"embedding"}), module="onnxruntime"))
"""

from __future__ import annotations

from dataclasses import replace

from nanoserve.profiles.base import (
    KINDS,
    Capabilities,
    EngineOptions,
    EngineProfile,
    ModelParts,
    runtime_only,
)

__all__ = [
    "DEFAULT_PROFILE",
    "KINDS",
    "Capabilities",
    "EngineOptions",
    "EngineProfile",
    "ModelParts",
    "profile_for",
    "profile_names",
    "register_profile",
    "runtime_only",
]

DEFAULT_PROFILE = EngineProfile(name="")  # any kind, no package, no source check, runtime only

_PROFILES: dict[str, EngineProfile] = {}


def register_profile(profile: EngineProfile) -> None:
    """Register (or replace) the profile of the engine ``profile.name``."""
    _PROFILES[profile.name] = profile


def profile_names() -> list[str]:
    return sorted(_PROFILES)


def profile_for(engine: str) -> EngineProfile:
    """The engine's profile; for an unknown engine, the default one under its name."""
    profile = _PROFILES.get(engine)
    return profile if profile is not None else replace(DEFAULT_PROFILE, name=engine)


def _register_builtins() -> None:
    from nanoserve.profiles import crossencoder, foreign, llamacpp, mock, sentence

    builtins = (
        llamacpp.PROFILE,
        sentence.PROFILE,
        crossencoder.PROFILE,
        mock.MOCK,
        mock.MOCK_EMBEDDING,
        foreign.COMMAND,
        foreign.REMOTE,
    )
    for profile in builtins:
        register_profile(profile)


_register_builtins()
