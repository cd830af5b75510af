"""The llama.cpp engine (GGUF chat models, continuous batching) over llama-cpp-python's low-level API.

``LlamaCppEngine`` is imported lazily so that the pure helpers (``chat``, ``slots``) can be used
without loading llama.cpp. The engine's options and served-weights path are in its profile
(``nanoserve.profiles.llamacpp``), which the gateway reads instead of this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanoserve.engines.llamacpp.engine import LlamaCppEngine

__all__ = ["LlamaCppEngine"]


def __getattr__(name: str) -> Any:
    if name == "LlamaCppEngine":
        from nanoserve.engines.llamacpp.engine import LlamaCppEngine

        return LlamaCppEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
