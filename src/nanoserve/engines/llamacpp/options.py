"""Options of the llama.cpp engine (the config's ``options:`` mapping). Pure: no llama_cpp import."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nanoserve.engines.base import EngineOptions

Quantization = Literal["keep", "q8_0", "q4_0"]


class LlamaCppOptions(EngineOptions):
    quantize: Quantization = Field(
        default="q8_0",
        description=(
            "weights served: 'keep' the source file, or convert it once (cached under "
            "data_dir/weights) to q8_0 or q4_0, whose CPU kernels are the fastest"
        ),
    )
    kv_cache_type: Literal["q8_0", "f16"] = Field(
        default="q8_0",
        description=(
            "KV cache precision. q8_0: half the memory, decoding as fast or faster, and one "
            "attention kernel for every batch shape, so a sequence's tokens never depend on what "
            "it was batched with or how its prompt was split. f16: faster long prompts (tiled "
            "attention for 64+ prompt tokens), but cached prefixes reproduce cold runs only with "
            "prefill_chunk < 64, and with threads > 1 a sequence decoding alone past 512 cached "
            "tokens may pick different tokens than in company"
        ),
    )
    n_batch: int = Field(
        default=512, ge=8, le=8192, description="most tokens in one decode step (decode + prefill)"
    )
    prefill_chunk: int = Field(
        default=128, ge=1, le=8192, description="most prompt tokens of one sequence per step"
    )
    prefill_budget: int = Field(
        default=128,
        ge=1,
        le=8192,
        description=(
            "most prompt tokens per step while other sequences are decoding, so their streams never "
            "stall for long; with nothing decoding, prompts take up to n_batch"
        ),
    )
    prefix_cache: bool = Field(default=True, description="reuse the KV cache of matching prompt prefixes")
    prefix_copy_min: int = Field(
        default=32,
        ge=1,
        description="copy another slot's cached prefix only when it saves at least this many tokens",
    )
    kv_unified: bool = Field(
        default=False,
        description=(
            "one KV buffer shared by all slots (prefix copies are free, but every token attends "
            "over the whole buffer); default: one buffer per slot"
        ),
    )
    flash_attn: Literal["auto", "on", "off"] = "auto"
    penalty_last_n: int = Field(
        default=64, ge=0, le=1 << 16, description="tokens the repeat/presence/frequency penalties look back"
    )
    use_mmap: bool = True

    @model_validator(mode="after")
    def _quantized_kv_needs_flash_attention(self) -> LlamaCppOptions:
        if self.kv_cache_type != "f16" and self.flash_attn == "off":
            raise ValueError("kv_cache_type q8_0 needs flash attention (flash_attn: auto or on)")
        return self
