"""The sentence-transformers engine's profile: its options, a model directory check, its memory.

Backends (``options.backend``): ``torch`` runs the model with sentence-transformers; ``onnx`` runs
an ONNX export of the same weights with ONNX Runtime (made once, cached under the data dir's
``onnx/``), ``onnx-int8`` its blockwise int8 quantization; ``auto`` (the default) is ``onnx`` when
onnxruntime is installed, else ``torch``. An ONNX worker imports neither torch nor
sentence-transformers, so its runtime baseline is probed apart (the ``onnx`` variant).

Memory: the weights (the safetensors, or the ONNX file once it exists), plus the activations of
one forward pass of ``max_batch_tokens`` tokens (sizes from the model's ``config.json``).
Import-light: no torch, no sentence_transformers, no onnxruntime.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from nanoserve.errors import ConfigError
from nanoserve.profiles.base import F32, EngineOptions, EngineProfile, ModelParts
from nanoserve.profiles.llamacpp import DIGEST_CHARS, source_digest
from nanoserve.sources import resolve_source

if TYPE_CHECKING:
    from nanoserve.config import ModelConfig

WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin", ".pt")
MODEL_FILES = ("modules.json", "config.json")  # one of them marks a model directory
Backend = Literal["auto", "torch", "onnx", "onnx-int8"]
TOKENIZER_FILE = "tokenizer.json"  # the ONNX path's tokenizer (the `tokenizers` library)
# ONNX Runtime's CPU arena keeps more than one layer's activations alive: measured on the fused
# BERT graph at the worst shape (32 x 256 tokens), twice the torch figure (benchmarks/README.md)
ONNX_ACTIVATION_FACTOR = 2
ONNX_EXPORT_VERSION = 2  # part of the cached file's name: a new export format makes a new file


class SentenceOptions(EngineOptions):
    max_batch_tokens: int = Field(default=8192, ge=64, description="token budget of one forward pass")
    max_wait_ms: float = Field(
        default=3.0, ge=0, le=1000, description="wait for more requests at most this long"
    )
    normalize: bool = True
    device: str = "cpu"
    backend: Backend = Field(
        default="auto",
        description="torch (sentence-transformers), onnx (ONNX Runtime on an export made once), "
        "onnx-int8 (its weights in blockwise int8), auto: onnx when onnxruntime is installed",
    )


def resolve_backend(backend: Backend, directory: Path) -> Literal["torch", "onnx", "onnx-int8"]:
    """What ``auto`` means here: ONNX Runtime when it is installed and the model has the fast
    tokenizer's ``tokenizer.json`` the ONNX path tokenizes with (measured faster on this CPU,
    benchmarks/embeddings.py), else torch."""
    if backend != "auto":
        return backend
    if importlib.util.find_spec("onnxruntime") is None or not (directory / TOKENIZER_FILE).is_file():
        return "torch"
    return "onnx"


def weight_files(directory: Path) -> list[Path]:
    """The model's weight files (safetensors preferred)."""
    files = [p for p in directory.rglob("*") if p.suffix in WEIGHT_FILE_SUFFIXES and p.is_file()]
    return [p for p in files if p.suffix == ".safetensors"] or files


def onnx_path(directory: Path, backend: str, data_dir: Path) -> Path:
    """Where the ONNX export of the model in ``directory`` is cached: named by its weights'
    digest, so another model or changed weights never reuse a stale file."""
    files = sorted(weight_files(directory))
    if not files:
        raise ConfigError(f"{directory}: no weight files ({', '.join(WEIGHT_FILE_SUFFIXES)}) to export")
    digest = "-".join(source_digest(p)[:DIGEST_CHARS] for p in files)
    precision = "int8b32" if backend == "onnx-int8" else "fp32"  # int8: the blockwise quantization
    return data_dir / "onnx" / f"{digest}-v{ONNX_EXPORT_VERSION}-{precision}.onnx"


def runtime_variant(config: ModelConfig, data_dir: Path) -> str | None:
    """``onnx`` for a model served by ONNX Runtime (its worker's runtime is probed apart)."""
    try:
        options = SentenceOptions.model_validate(config.options)
        directory = resolve_source(config.source, data_dir) if config.source else None
    except (ValueError, ConfigError):
        return None  # the engine reports the bad option or source when it starts
    if directory is None or resolve_backend(options.backend, directory) == "torch":
        return None
    return "onnx"


def check_directory(path: Path) -> str | None:
    if not path.is_dir() or not any((path / name).exists() for name in MODEL_FILES):
        return f"{path} is not a sentence-transformers model directory"
    return None


def model_parts(config: ModelConfig, data_dir: Path) -> ModelParts:
    if config.source is None:
        raise ConfigError(f"model '{config.id}': no source to estimate its memory from")
    directory = resolve_source(config.source, data_dir)
    options = SentenceOptions.model_validate(config.options)
    backend = resolve_backend(options.backend, directory)
    weights = sum(p.stat().st_size for p in weight_files(directory))
    basis = f"directory {directory.name}"
    if backend != "torch":
        exported = onnx_path(directory, backend, data_dir)
        if exported.exists():
            weights, basis = exported.stat().st_size, f"{basis}, {exported.name}"
        # else the fp32 weights, for int8 too: its file keeps the embeddings table and the QKV
        # projections in fp32 (all-MiniLM-L6-v2: 67 of 90 MB), so a quarter was 45 MB short
    try:
        arch = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        arch = {}
    hidden = int(arch.get("hidden_size", 768))
    intermediate = int(arch.get("intermediate_size", 4 * hidden))
    heads = int(arch.get("num_attention_heads", 12))
    tokens = options.max_batch_tokens
    # one layer's activations for a full batch: hidden states, feed-forward, attention scores
    activations = tokens * F32 * (4 * hidden + intermediate + heads * config.context_length)
    if backend != "torch":
        activations *= ONNX_ACTIVATION_FACTOR
    return ModelParts({"weights": weights, "activations": activations}, f"{basis} ({backend})")


PROFILE = EngineProfile(
    name="sentence-transformers",
    kinds=frozenset({"embedding"}),
    module="sentence_transformers",
    check_source=check_directory,
    model_parts=model_parts,
    options=SentenceOptions,
    runtime_variant=runtime_variant,
    variant_modules={"onnx": ("onnxruntime", "tokenizers")},
)
