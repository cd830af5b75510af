"""What Ollama's model endpoints show about a model's weights: format, family, size, digest, metadata.

Read from the served weights themselves: a GGUF header (architecture, parameter count, file
type, chat template, the whole key/value metadata for ``/api/show``), or a sentence-transformers
directory (``config.json`` and the ``model.safetensors`` header). A model without weights (the
mock engines) is described by its config. Reading is blocking file I/O, so callers run
``describe`` in a thread; results are cached per file (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nanoserve.config import ModelConfig
from nanoserve.errors import ConfigError
from nanoserve.models.gguf import GGUFArray, GGUFError, read_gguf_info
from nanoserve.sources import resolve_source

# Ollama omits these from model_info: the name is shown elsewhere, the template is "template".
_HIDDEN_KEYS = ("general.name", "tokenizer.chat_template")
# Without verbose, Ollama shows longer arrays (the vocabulary, merges, ...) as [].
_SHOWN_ARRAY_ITEMS = 5
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Weights:
    path: str = ""  # the served weights ("" for a model without weights)
    format: str = ""  # "gguf", "safetensors", "" (no weights)
    family: str = ""
    parameter_count: int | None = None
    quantization_level: str = ""
    size: int = 0  # bytes on disk
    modified_at: float = 0.0  # Unix seconds
    digest: str = ""  # sha256 of the content, hex
    license: str = ""
    template: str = ""  # the chat template shipped with the weights
    model_info: dict[str, Any] = field(default_factory=dict)


def human_number(n: int) -> str:
    """Ollama's ``format.HumanNumber``: 134515008 -> "134.52M", 8030261248 -> "8.0B"."""
    for unit, scale, decimals in (("B", 10**9, 1), ("M", 10**6, 2)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value == math.floor(value) else f"{value:.{decimals}f}{unit}"
    if n >= 1000:
        return f"{n / 1000:.0f}K"
    return str(n)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _disk_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _shown(value: Any) -> Any:
    """A metadata value as JSON: arrays the reader summarised (``GGUFArray``) become []."""
    if isinstance(value, GGUFArray):
        return []
    if isinstance(value, list) and value and isinstance(value[0], list | GGUFArray):  # nested arrays
        return [_shown(v) for v in value]
    return value


def _gguf_weights(path: Path, verbose: bool) -> Weights:
    header = read_gguf_info(path, max_array_items=None if verbose else _SHOWN_ARRAY_ITEMS)
    info = {k: _shown(v) for k, v in header.metadata.items() if k not in _HIDDEN_KEYS}
    info.setdefault("general.parameter_count", header.parameter_count)  # here: the tensors' sum
    return Weights(
        format="gguf",
        family=str(header.get("general.architecture", "")),
        parameter_count=int(info["general.parameter_count"]),
        quantization_level=header.file_type_name or "unknown",
        license=str(header.get("general.license", "")),
        template=header.chat_template or "",
        model_info=info,
    )


def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header: dict[str, Any] = json.loads(f.read(size))
    return header


def _sentence_weights(path: Path) -> Weights:
    """A sentence-transformers directory, described in GGUF's key names (as Ollama would)."""
    config: dict[str, Any] = {}
    if (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text())
    arch = str(config.get("model_type", ""))
    parameters: int | None = None
    dtypes: dict[str, int] = {}
    tensors_file = path / "model.safetensors"
    if tensors_file.is_file():
        tensors = {k: v for k, v in _safetensors_header(tensors_file).items() if k != "__metadata__"}
        parameters = 0
        for tensor in tensors.values():
            count = math.prod(tensor["shape"])
            parameters += count
            dtypes[tensor["dtype"]] = dtypes.get(tensor["dtype"], 0) + count
    info: dict[str, Any] = {"general.architecture": arch}
    if parameters is not None:
        info["general.parameter_count"] = parameters
    for key, source in (
        ("context_length", "max_position_embeddings"),
        ("embedding_length", "hidden_size"),
        ("block_count", "num_hidden_layers"),
        ("feed_forward_length", "intermediate_size"),
        ("attention.head_count", "num_attention_heads"),
        ("vocab_size", "vocab_size"),
    ):
        if source in config:
            info[f"{arch}.{key}"] = config[source]
    return Weights(
        format="safetensors" if tensors_file.is_file() else "",
        family=arch,
        parameter_count=parameters,
        quantization_level=max(dtypes, key=dtypes.__getitem__) if dtypes else "",
        model_info=info,
    )


class WeightsCatalog:
    """``describe(config)``, cached per weights file. Blocking: call it from a worker thread;
    one lock serialises the (rare, first-time) reads so a file is hashed once."""

    def __init__(self, started_at: float, data_dir: Path | None = None):
        self._started_at = started_at
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int, int], Weights] = {}

    def describe(self, config: ModelConfig, *, verbose: bool = False) -> Weights:
        try:
            path = resolve_source(config.source, self._data_dir) if config.source else None
        except ConfigError:
            path = None  # /ready reports missing weights; here the model is just described less
        if path is None:
            blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
            return Weights(
                family=config.engine, modified_at=self._started_at, digest=hashlib.sha256(blob).hexdigest()
            )
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                cached = self._cache[key] = replace(
                    _read(path, verbose=False),
                    path=str(path),
                    size=_disk_size(path),
                    modified_at=stat.st_mtime,
                    digest=_digest(path),
                )
        if verbose and cached.format == "gguf":
            return replace(cached, model_info=_read(path, verbose=True).model_info)
        return cached


def _read(path: Path, *, verbose: bool) -> Weights:
    if path.is_dir():
        return _sentence_weights(path)
    try:
        return _gguf_weights(path, verbose)
    except GGUFError:  # not a GGUF file we can read: shown by path, size and digest only
        return Weights()
