"""The cross-encoder engine's profile (``kind: rerank``): its options, and the model directory
check and memory estimate of the sentence-transformers engine (the same files and the same
forward pass of at most ``max_batch_tokens`` tokens). Import-light: no torch."""

from __future__ import annotations

from pydantic import Field

from nanoserve.profiles.base import EngineOptions, EngineProfile
from nanoserve.profiles.sentence import check_directory, model_parts


class CrossEncoderOptions(EngineOptions):
    max_batch_tokens: int = Field(
        default=8192, ge=64, description="token budget of one forward pass (query + document pairs)"
    )
    max_wait_ms: float = Field(
        default=3.0, ge=0, le=1000, description="wait for more requests at most this long"
    )
    device: str = "cpu"


PROFILE = EngineProfile(
    name="cross-encoder",
    kinds=frozenset({"rerank"}),
    module="sentence_transformers",
    check_source=check_directory,
    model_parts=model_parts,
    options=CrossEncoderOptions,
)
