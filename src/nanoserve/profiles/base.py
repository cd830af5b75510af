"""What a profile is: the facts about an engine that the gateway needs without running it.

* ``kinds``: the model kinds it serves (``chat``, ``embedding``, ``rerank``);
* ``module``: the Python package it needs installed (checked by ``/ready``), or None;
* ``check_source``: is this path weights the engine can load (GGUF magic, a model directory)?
  None: the engine takes no weights (a config without ``source`` is fine);
* ``model_parts``: the model's own memory for a config before its first load (the estimate
  adds the measured runtime baseline), computed from files without loading anything;
* ``options``: the pydantic model of its ``options:`` mapping (the engine validates with it);
* ``capabilities``: what its workers can do beyond their kinds (``grammar``, ``vision``);
* ``runtime``: whether our worker runtime's baseline is part of its memory (not for servers that
  are not our worker: ``command``, ``remote``);
* ``check_config``: more for ``/ready`` than the source (the command on ``PATH``, the API key);
* ``runtime_variant``: for an engine whose workers import different libraries by config (the
  sentence engine's torch or ONNX backend), the config's variant; ``variant_modules`` names what
  a worker of each variant imports instead of ``module``, so each has its own measured baseline.

Everything here is import-light: pydantic and the standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from nanoserve.config import ModelConfig

KINDS = frozenset({"chat", "embedding", "rerank"})
F32 = 4  # bytes of a float32 activation


class EngineOptions(BaseModel):
    """Base for an engine's options (the config's ``options:``); subclasses add fields."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ModelParts:
    """The model's own memory (without the runtime) and the share of it placed on GPU 0."""

    parts: dict[str, int]  # weights, kv_cache, compute, ... (bytes)
    basis: str  # what it was computed from
    gpu_fraction: float = 0.0
    gpu_parts: tuple[str, ...] = ()  # parts placed on the GPU, by ``gpu_fraction`` (compute: fully)


@dataclass(frozen=True)
class Capabilities:
    grammar: bool = False  # constrained decoding (GBNF): exact tool calls and JSON schemas
    vision: bool = False  # images in chat messages


SourceCheck = Callable[[Path], "str | None"]
ConfigCheck = Callable[["ModelConfig"], "str | None"]
PartsOf = Callable[["ModelConfig", Path], ModelParts]  # (config, data_dir) -> parts
VariantOf = Callable[["ModelConfig", Path], "str | None"]  # (config, data_dir) -> variant


def runtime_only(config: ModelConfig, data_dir: Path) -> ModelParts:
    """No model parts: the estimate is the engine's runtime baseline alone."""
    return ModelParts({}, f"runtime of engine '{config.engine}' only")


@dataclass(frozen=True)
class EngineProfile:
    name: str
    kinds: frozenset[str] = KINDS
    module: str | None = None
    check_source: SourceCheck | None = None
    model_parts: PartsOf = runtime_only
    options: type[EngineOptions] = EngineOptions
    capabilities: Capabilities = field(default_factory=Capabilities)
    runtime: bool = True  # the estimate adds our worker runtime's measured baseline
    check_config: ConfigCheck | None = None  # more readiness: a command on PATH, a key's variable set
    runtime_variant: VariantOf | None = None  # None: one runtime for every config
    variant_modules: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def runtime_name(self, config: ModelConfig, data_dir: Path) -> str:
        """The name its runtime baseline is probed and stored under: the engine, or
        ``engine:variant``."""
        variant = self.runtime_variant(config, data_dir) if self.runtime_variant else None
        return f"{self.name}:{variant}" if variant else self.name

    def runtime_modules(self, variant: str | None) -> tuple[str, ...]:
        """What a worker of that variant imports beside nanoserve."""
        if variant is not None and variant in self.variant_modules:
            return self.variant_modules[variant]
        return (self.module,) if self.module else ()
