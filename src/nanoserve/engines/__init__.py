"""Engines register through one door: a name and the import path of their class.

Imports are lazy so that the gateway (which never runs an engine) and ``--help`` never import
torch or llama.cpp. A third-party engine calls ``register_engine`` from its own package.
"""

from __future__ import annotations

import importlib

from nanoserve.engines.base import Engine
from nanoserve.errors import ConfigError

_ENGINES: dict[str, str] = {}


def register_engine(name: str, target: str) -> None:
    """Register an engine class by ``"module:Class"``."""
    _ENGINES[name] = target


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def load_engine_class(name: str) -> type[Engine]:
    try:
        target = _ENGINES[name]
    except KeyError:
        raise ConfigError(f"unknown engine {name!r} (known: {', '.join(engine_names())})") from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise ConfigError(f"engine {name!r}: {target} is not an Engine subclass")
    return cls


register_engine("llamacpp", "nanoserve.engines.llamacpp:LlamaCppEngine")
register_engine("sentence-transformers", "nanoserve.engines.sentence:SentenceTransformersEngine")
register_engine("cross-encoder", "nanoserve.engines.crossencoder:CrossEncoderEngine")
register_engine("mock", "nanoserve.engines.mock:MockEngine")
register_engine("mock-embedding", "nanoserve.engines.mock:MockEmbeddingEngine")
