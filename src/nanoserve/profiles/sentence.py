"""The sentence-transformers engine's profile: its options, a model directory check, its memory.

Memory: the weight files in the model directory (safetensors preferred), plus the activations of
one forward pass of ``max_batch_tokens`` tokens (sizes from the model's ``config.json``).
Import-light: no torch, no sentence_transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from nanoserve.errors import ConfigError
from nanoserve.profiles.base import F32, EngineOptions, EngineProfile, ModelParts
from nanoserve.sources import resolve_source

if TYPE_CHECKING:
    from nanoserve.config import ModelConfig

WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin", ".pt")
MODEL_FILES = ("modules.json", "config.json")  # one of them marks a model directory


class SentenceOptions(EngineOptions):
    max_batch_tokens: int = Field(default=8192, ge=64, description="token budget of one forward pass")
    max_wait_ms: float = Field(
        default=3.0, ge=0, le=1000, description="wait for more requests at most this long"
    )
    normalize: bool = True
    device: str = "cpu"


def check_directory(path: Path) -> str | None:
    if not path.is_dir() or not any((path / name).exists() for name in MODEL_FILES):
        return f"{path} is not a sentence-transformers model directory"
    return None


def model_parts(config: ModelConfig, data_dir: Path) -> ModelParts:
    if config.source is None:
        raise ConfigError(f"model '{config.id}': no source to estimate its memory from")
    directory = resolve_source(config.source, data_dir)
    files = [p for p in directory.rglob("*") if p.suffix in WEIGHT_FILE_SUFFIXES and p.is_file()]
    preferred = [p for p in files if p.suffix == ".safetensors"] or files
    weights = sum(p.stat().st_size for p in preferred)
    try:
        arch = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        arch = {}
    hidden = int(arch.get("hidden_size", 768))
    intermediate = int(arch.get("intermediate_size", 4 * hidden))
    heads = int(arch.get("num_attention_heads", 12))
    default_tokens = SentenceOptions.model_fields["max_batch_tokens"].default
    tokens = int(config.options.get("max_batch_tokens", default_tokens))
    # one layer's activations for a full batch: hidden states, feed-forward, attention scores
    activations = tokens * F32 * (4 * hidden + intermediate + heads * config.context_length)
    return ModelParts({"weights": weights, "activations": activations}, f"directory {directory.name}")


PROFILE = EngineProfile(
    name="sentence-transformers",
    kinds=frozenset({"embedding"}),
    module="sentence_transformers",
    check_source=check_directory,
    model_parts=model_parts,
    options=SentenceOptions,
)
