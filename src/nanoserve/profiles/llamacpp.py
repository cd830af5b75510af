"""The llama.cpp engine's profile: its options, which GGUF file it serves, and its memory parts.

Import-light (no llama_cpp, no engine module, GGUF headers read by ``nanoserve.models.gguf``
imported when needed): the gateway uses it for ``/ready`` and the estimate, and the engine
(``nanoserve.engines.llamacpp``) takes its options model and weights path from here.

Which file is served: with ``quantize: keep`` the source file as is. Otherwise the source is
converted once to a quantization whose CPU kernels are fast (Q8_0 or Q4_0) and cached as
``<data_dir>/weights/<sha256 prefix of the source>-<quant>.gguf``; a source already of that type is
served as is. The conversion itself (``engines/llamacpp/convert.py``) needs llama_cpp.

Memory: the weights from the GGUF header of the file that will really be served (the converted
file when it exists, else the source's tensors sized at the target type), the KV cache for
``context_length x parallel`` cells, the compute buffer and the output buffer. llama.cpp reserves
its compute buffer for one micro-batch of ``n_batch`` tokens all asking for logits (99 MiB for
the default model), but on the CPU only the pages a step writes become resident, and our
scheduler asks for at most one row of logits per sequence and step: the CPU part is the
activations of ``n_batch`` tokens plus ``parallel`` rows of logits (the attention scores too
without flash attention), measured within 10 % (benchmarks/memory_estimates.py). A GPU
allocates the whole reservation, so offloaded models count all of it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from nanoserve.errors import ConfigError
from nanoserve.profiles.base import F32, Capabilities, EngineOptions, EngineProfile, ModelParts
from nanoserve.sources import resolve_source

if TYPE_CHECKING:
    from nanoserve.config import ModelConfig
    from nanoserve.models.gguf import GGUFInfo

Quantization = Literal["keep", "q8_0", "q4_0"]
GGUF_MAGIC = b"GGUF"
# llama.cpp's ``enum llama_ftype`` (LLAMA_FTYPE_MOSTLY_*), as stored in general.file_type.
FTYPES: dict[str, int] = {"q4_0": 2, "q4_1": 3, "q8_0": 7}
DIGEST_CHARS = 16
_CHUNK = 1 << 20


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
    n_gpu_layers: int = Field(
        default=0,
        ge=-1,
        le=1024,
        description="layers offloaded to the GPU (-1: all); needs a CUDA build (make install GPU=cuda)",
    )
    main_gpu: int = Field(
        default=0, ge=0, le=63, description="the GPU that holds the model, among those visible"
    )
    tensor_split: list[float] | None = Field(
        default=None,
        max_length=64,
        description="share of the model per visible GPU, e.g. [3, 1]; default: the main GPU only",
    )
    penalty_last_n: int = Field(
        default=64, ge=0, le=1 << 16, description="tokens the repeat/presence/frequency penalties look back"
    )
    use_mmap: bool = True

    @model_validator(mode="after")
    def _quantized_kv_needs_flash_attention(self) -> LlamaCppOptions:
        if self.kv_cache_type != "f16" and self.flash_attn == "off":
            raise ValueError("kv_cache_type q8_0 needs flash attention (flash_attn: auto or on)")
        return self


# -- the served weights ------------------------------------------------------------------------
def source_digest(path: Path) -> str:
    """Hex SHA-256 of a file, remembered per (path, size, mtime) within the process."""
    stat = path.stat()
    return _digest(path.resolve(), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def gguf_file_type(path: Path) -> int | None:
    """``general.file_type`` of a GGUF file, or None when absent or unreadable."""
    from nanoserve.models import gguf

    try:
        return gguf.read_gguf_info(path).file_type
    except (gguf.GGUFError, OSError):
        return None


def file_type_name(ftype: int | None) -> str:
    """The engine's name for a file type, lower case as in ``quantize`` (``q8_0``, ``f16``)."""
    from nanoserve.models import gguf

    if ftype is None:
        return "unknown"
    return (gguf.file_type_name(ftype) or f"ftype-{ftype}").lower()


def served_weights_path(source: Path, quantize: Quantization, data_dir: Path) -> Path:
    """The GGUF file the engine serves for ``source`` under the ``quantize`` option."""
    if quantize == "keep" or gguf_file_type(source) == FTYPES[quantize]:
        return source
    return data_dir / "weights" / f"{source_digest(source)[:DIGEST_CHARS]}-{quantize}.gguf"


def served_gguf(source: Path, quantize: Quantization, data_dir: Path) -> tuple[Path, str | None]:
    """The file to read for the estimate and the quantization to size its weights at (None: as
    they are): the served file once it exists, else the source at the target type."""
    served = served_weights_path(source, quantize, data_dir)
    if served == source or served.exists():
        return served, None
    return source, quantize


# -- readiness and memory ----------------------------------------------------------------------
def check_gguf(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if magic != GGUF_MAGIC:
        return f"{path} is not a GGUF file"
    return None


def llamacpp_parts(
    info: GGUFInfo, config: ModelConfig, options: dict[str, Any], quantize: str | None
) -> ModelParts:
    """Weights, KV cache, compute and output buffers of a llama.cpp context for ``config``."""
    cells = config.parallel * config.context_length
    n_ubatch = max(
        int(options.get("n_batch", LlamaCppOptions.model_fields["n_batch"].default)), config.parallel
    )
    vocab, n_ff, n_embd = info.vocab_size, info.feed_forward_length, info.embedding_length
    gpu_layers = int(options.get("n_gpu_layers", 0) or 0)
    logit_rows = n_ubatch if gpu_layers else config.parallel  # reserved, or written (see above)
    compute = n_ubatch * F32 * (2 * n_ff + 4 * n_embd) + logit_rows * vocab * F32
    if options.get("flash_attn") == "off":  # the attention scores are materialised
        per_stream = cells if options.get("kv_unified") else config.context_length
        compute += n_ubatch * per_stream * info.head_count * F32
    parts = {
        "weights": info.weights_bytes_as(quantize),
        "kv_cache": info.kv_cache_bytes(cells, cache_type=str(options.get("kv_cache_type", "f16"))),
        "compute": compute,
        "output": vocab * config.parallel * F32,
    }
    basis = f"gguf {info.path.name}" + (f" as {quantize}" if quantize else "")
    if gpu_layers and info.block_count:
        fraction = 1.0 if gpu_layers < 0 else min(1.0, gpu_layers / info.block_count)
        return ModelParts(parts, basis, fraction, ("weights", "kv_cache", "compute"))
    return ModelParts(parts, basis)


def model_parts(config: ModelConfig, data_dir: Path) -> ModelParts:
    from nanoserve.models.gguf import read_gguf_info

    if config.source is None:
        raise ConfigError(f"model '{config.id}': no source to estimate its memory from")
    options = LlamaCppOptions.model_validate(config.options)
    path, quantize = served_gguf(resolve_source(config.source, data_dir), options.quantize, data_dir)
    return llamacpp_parts(read_gguf_info(path), config, options.model_dump(), quantize)


PROFILE = EngineProfile(
    name="llamacpp",
    kinds=frozenset({"chat"}),
    module="llama_cpp",
    check_source=check_gguf,
    model_parts=model_parts,
    options=LlamaCppOptions,
    capabilities=Capabilities(grammar=True),
)
