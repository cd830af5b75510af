"""The mock engines' profiles: no weights, no library; their memory is what they are told to
allocate (``options.memory_mib``, which the mock worker really allocates)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from nanoserve.profiles.base import EngineOptions, EngineProfile, ModelParts

if TYPE_CHECKING:
    from nanoserve.config import ModelConfig

MIB = 1 << 20


class MockOptions(EngineOptions):
    load_seconds: float = Field(default=0.0, ge=0, le=600)
    convert_seconds: float = Field(
        default=0.0, ge=0, le=600, description="a load phase 'converting' before load_seconds"
    )
    ttft_ms: float = Field(default=0.0, ge=0, le=60_000, description="delay before the first token")
    tokens_per_second: float = Field(default=0.0, ge=0, description="0 = as fast as possible")
    memory_mib: int = Field(default=0, ge=0, le=1 << 20, description="memory to allocate on load")
    vram_mib: int = Field(
        default=0, ge=0, le=1 << 20, description="memory to hold on a simulated GPU (config devices:)"
    )
    fail_on_load: bool = False
    reply: str | None = Field(default=None, description="fixed reply text instead of mock words")
    dimensions: int = Field(default=384, ge=1, le=8192)


def model_parts(config: ModelConfig, data_dir: Path) -> ModelParts:
    parts = {"weights": int(config.options.get("memory_mib", 0)) * MIB}
    vram = int(config.options.get("vram_mib", 0)) * MIB
    if vram:
        parts["vram"] = vram
        return ModelParts(parts, "declared memory_mib and vram_mib", gpu_fraction=1.0, gpu_parts=("vram",))
    return ModelParts(parts, "declared memory_mib")


MOCK = EngineProfile(name="mock", kinds=frozenset({"chat"}), model_parts=model_parts, options=MockOptions)
MOCK_EMBEDDING = EngineProfile(
    name="mock-embedding", kinds=frozenset({"embedding"}), model_parts=model_parts, options=MockOptions
)
