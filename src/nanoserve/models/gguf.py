"""GGUF metadata: architecture, sizes, quantization and chat template, from the file header only.

The header (key/value metadata and tensor descriptors) is parsed here with the ``gguf`` package's
constants (value types, quantization block sizes, file types). ``gguf.GGUFReader`` would give the
same facts, but it builds a numpy view of every element of every array: for the 49k-token
vocabulary of a 135M model that is seconds of CPU. Here arrays longer than ``max_array_items``
are skipped and only their type and length kept (``GGUFArray``), so reading a header takes
milliseconds and never touches tensor data. Float32 values are kept as the shortest decimal that
is the same float32 (``1e-05``, not ``9.999999747378752e-06``), as llama.cpp and Ollama print them.

Used by the memory planner (weights, KV cache and compute estimates before a first load) and by
the Ollama ``/api/show`` route (``metadata`` is its ``model_info``: long arrays shown as ``[]``
unless verbose, when the header is read with ``max_array_items=None``).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from nanoserve.errors import ConfigError

# By default, arrays longer than this are summarised (type and length) instead of read.
MAX_ARRAY_ITEMS = 64

_SCALAR_FORMATS: dict[gguf.GGUFValueType, str] = {
    gguf.GGUFValueType.UINT8: "B",
    gguf.GGUFValueType.INT8: "b",
    gguf.GGUFValueType.UINT16: "H",
    gguf.GGUFValueType.INT16: "h",
    gguf.GGUFValueType.UINT32: "I",
    gguf.GGUFValueType.INT32: "i",
    gguf.GGUFValueType.FLOAT32: "f",
    gguf.GGUFValueType.BOOL: "?",
    gguf.GGUFValueType.UINT64: "Q",
    gguf.GGUFValueType.INT64: "q",
    gguf.GGUFValueType.FLOAT64: "d",
}


class GGUFError(ConfigError):
    """The file is not a GGUF file this reader understands."""


@dataclass(frozen=True, slots=True)
class GGUFArray:
    """A metadata array longer than the reader kept (e.g. the vocabulary): its item type and length."""

    item_type: str
    length: int


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    type: gguf.GGMLQuantizationType

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        return quantized_bytes(self.n_elements, self.type)


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    version: int
    metadata: dict[str, Any]  # scalars, arrays up to the limit, GGUFArray summaries of longer ones
    tensors: tuple[TensorInfo, ...] = field(repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def _arch(self, suffix: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}", default)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return str(value) if value is not None else None

    @property
    def parameter_count(self) -> int:
        declared = self.metadata.get("general.parameter_count")
        return int(declared) if declared else sum(t.n_elements for t in self.tensors)

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return value if isinstance(value, int) else None

    @property
    def file_type_name(self) -> str | None:
        return file_type_name(self.file_type)

    @property
    def quantization(self) -> str:
        """The file's quantization: its declared file type, else the dominant type of its weights."""
        if (name := self.file_type_name) is not None:
            return name
        weights = [t for t in self.tensors if len(t.shape) >= 2]
        if not weights:
            return "unknown"
        sizes: dict[str, int] = {}
        for t in weights:
            sizes[t.type.name] = sizes.get(t.type.name, 0) + t.n_elements
        return max(sizes, key=sizes.__getitem__)

    @property
    def context_length(self) -> int | None:
        value = self._arch("context_length")
        return int(value) if value is not None else None

    @property
    def block_count(self) -> int:
        return int(self._arch("block_count", 0))

    @property
    def embedding_length(self) -> int:
        return int(self._arch("embedding_length", 0))

    @property
    def feed_forward_length(self) -> int:
        value = self._arch("feed_forward_length", 0)
        return int(max(value) if isinstance(value, list) else value)

    @property
    def head_count(self) -> int:
        value = self._arch("attention.head_count", 0)
        return int(max(value) if isinstance(value, list) else value)

    @property
    def head_count_kv(self) -> int:
        value = self._arch("attention.head_count_kv")
        if value is None:
            return self.head_count
        return int(max(value) if isinstance(value, list) else value)

    @property
    def key_length(self) -> int:
        value = self._arch("attention.key_length")
        if value is not None:
            return int(value)
        return self.embedding_length // self.head_count if self.head_count else 0

    @property
    def value_length(self) -> int:
        value = self._arch("attention.value_length")
        return int(value) if value is not None else self.key_length

    @property
    def vocab_size(self) -> int:
        declared = self._arch("vocab_size")
        if declared is not None:
            return int(declared)
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, GGUFArray):
            return tokens.length
        return len(tokens) if isinstance(tokens, list) else 0

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return str(value) if value is not None else None

    @property
    def weights_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    def weights_bytes_as(self, quantization: str | None) -> int:
        """Tensor bytes once requantized to ``quantization`` (``q8_0``, ``q4_0``, ...; None: as is).

        Follows llama.cpp's quantize rule: weight matrices (``*.weight`` with two or more
        dimensions, rows divisible by the block size) take the target type; norms, biases and
        other vectors keep theirs.
        """
        if quantization is None or quantization.lower() in ("keep", self.quantization.lower()):
            return self.weights_bytes
        target = quantization_type(quantization)
        block, _ = gguf.GGML_QUANT_SIZES[target]
        total = 0
        for t in self.tensors:
            converts = t.name.endswith(".weight") and len(t.shape) >= 2 and t.shape[0] % block == 0
            total += quantized_bytes(t.n_elements, target) if converts else t.n_bytes
        return total

    def kv_cache_bytes(self, cells: int, *, cache_type: str = "f16") -> int:
        """K and V cache for ``cells`` token positions (all sequences together), every layer."""
        per_cell = self.head_count_kv * (self.key_length + self.value_length)
        return quantized_bytes(self.block_count * per_cell * cells, quantization_type(cache_type))

    def summary(self) -> dict[str, Any]:
        """Ollama-style ``details``: family, parameter size, quantization level."""
        return {
            "format": "gguf",
            "family": self.architecture,
            "parameter_size": self.metadata.get("general.size_label") or _size_label(self.parameter_count),
            "quantization_level": self.quantization,
        }


def file_type_name(ftype: int | None) -> str | None:
    """A ``general.file_type`` as llama.cpp names it (``Q4_1``, ``Q4_K_M``, ``F16``); None when
    absent or not a type the ``gguf`` package knows."""
    if ftype is None:
        return None
    try:
        name = gguf.LlamaFileType(ftype).name
    except ValueError:
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def quantization_type(name: str) -> gguf.GGMLQuantizationType:
    try:
        return gguf.GGMLQuantizationType[name.upper()]
    except KeyError:
        raise GGUFError(f"unknown GGML quantization type {name!r}") from None


def quantized_bytes(n_elements: int, qtype: gguf.GGMLQuantizationType) -> int:
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    return (n_elements + block - 1) // block * type_size


def bytes_per_weight(quantization: str) -> float:
    """Average bytes per weight of a GGML type: q8_0 → 1.0625, q4_1 → 0.625, f16 → 2."""
    block, type_size = gguf.GGML_QUANT_SIZES[quantization_type(quantization)]
    return type_size / block


def _shortest_f32(value: float) -> float:
    """The shortest decimal that is the same float32 (1e-05, not 9.999999747378752e-06)."""
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", candidate))[0] == value:
            return candidate
    return value  # nan


def _size_label(params: int) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if params >= scale:
            return f"{params / scale:.3g}{unit}"
    return str(params)


class _Cursor:
    def __init__(self, buf: mmap.mmap, endian: str, max_array_items: int | None):
        self.buf = buf
        self.pos = 0
        self.endian = endian
        self.max_array_items = max_array_items

    def unpack(self, fmt: str) -> Any:
        fmt = self.endian + fmt
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("Q")
        raw = self.buf[self.pos : self.pos + length]
        if len(raw) != length:
            raise GGUFError("truncated string in GGUF header")
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.unpack("Q")  # read before adding: unpack moves pos
        self.pos += length

    def value(self, vtype: gguf.GGUFValueType) -> Any:
        if vtype == gguf.GGUFValueType.STRING:
            return self.string()
        if vtype == gguf.GGUFValueType.ARRAY:
            return self.array()
        value = self.unpack(_SCALAR_FORMATS[vtype])
        return _shortest_f32(value) if vtype == gguf.GGUFValueType.FLOAT32 else value

    def array(self) -> list[Any] | GGUFArray:
        item_type = gguf.GGUFValueType(self.unpack("I"))
        length = self.unpack("Q")
        if self.max_array_items is not None and length > self.max_array_items:
            self.skip(item_type, length)
            return GGUFArray(item_type.name.lower(), length)
        if item_type in (gguf.GGUFValueType.STRING, gguf.GGUFValueType.ARRAY):
            return [self.value(item_type) for _ in range(length)]
        fmt = f"{self.endian}{length}{_SCALAR_FORMATS[item_type]}"  # numbers: one unpack for all
        values = list(struct.unpack_from(fmt, self.buf, self.pos))
        self.pos += struct.calcsize(fmt)
        return [_shortest_f32(v) for v in values] if item_type == gguf.GGUFValueType.FLOAT32 else values

    def skip(self, item_type: gguf.GGUFValueType, length: int) -> None:
        if item_type == gguf.GGUFValueType.STRING:
            for _ in range(length):
                self.skip_string()
        elif item_type == gguf.GGUFValueType.ARRAY:
            for _ in range(length):
                self.skip(gguf.GGUFValueType(self.unpack("I")), self.unpack("Q"))
        else:
            self.pos += length * struct.calcsize(_SCALAR_FORMATS[item_type])


def read_gguf_info(path: str | Path, *, max_array_items: int | None = MAX_ARRAY_ITEMS) -> GGUFInfo:
    """The metadata and tensor descriptors of a GGUF file (blocking file I/O: run it in a thread).

    Arrays longer than ``max_array_items`` are summarised as ``GGUFArray``; None keeps them all
    (the whole vocabulary: a few times slower).
    """
    path = Path(path)
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(path, buf, max_array_items)
    except (OSError, ValueError) as exc:  # ValueError: empty file for mmap
        raise GGUFError(f"cannot read GGUF file {path}: {exc}") from exc
    except (struct.error, IndexError) as exc:
        raise GGUFError(f"{path} is not a valid GGUF file (truncated header)") from exc


def _parse(path: Path, buf: mmap.mmap, max_array_items: int | None) -> GGUFInfo:
    if len(buf) < 24 or struct.unpack_from("<I", buf, 0)[0] != gguf.GGUF_MAGIC:
        raise GGUFError(f"{path} is not a GGUF file")
    version = struct.unpack_from("<I", buf, 4)[0]
    endian = "<"
    if version & 0xFFFF == 0:  # a big-endian file
        endian, version = ">", struct.unpack_from(">I", buf, 4)[0]
    if version not in (2, 3):
        raise GGUFError(f"{path}: GGUF version {version} is not supported")
    cur = _Cursor(buf, endian, max_array_items)
    cur.pos = 8
    n_tensors, n_kv = cur.unpack("Q"), cur.unpack("Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(gguf.GGUFValueType(cur.unpack("I")))
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.unpack("I")
        shape = tuple(cur.unpack("Q") for _ in range(n_dims))
        qtype = gguf.GGMLQuantizationType(cur.unpack("I"))
        cur.unpack("Q")  # data offset
        tensors.append(TensorInfo(name, shape, qtype))
    return GGUFInfo(path=path, version=version, metadata=metadata, tensors=tuple(tensors))
