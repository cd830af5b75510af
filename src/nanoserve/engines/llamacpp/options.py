"""Options of the llama.cpp engine (the config's ``options:`` mapping). Pure: no llama_cpp import."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
    n_batch: int = Field(
        default=512, ge=8, le=8192, description="most tokens in one decode step (decode + prefill)"
    )
    prefill_chunk: int = Field(
        default=48,
        ge=1,
        le=8192,
        description=(
            "most prompt tokens of one sequence per step; below 64, llama.cpp's CPU flash attention "
            "takes the same kernel as decoding, so a prompt's KV cache is bit-identical however it "
            "was split (cached prefixes reproduce cold runs exactly); 64 or more: faster prompts, "
            "without that guarantee"
        ),
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
