"""A lean GGUF header reader: metadata key/values and tensor shapes, no tensor data.

PRIVATE STOPGAP, to be replaced by ``nanoserve.models.gguf`` (the orchestrator's reader) when it
lands. The ``gguf`` package's ``GGUFReader`` builds a numpy view per array element and takes
seconds on a 49k-token vocabulary; this reads the same header from a memory map in milliseconds,
skipping (or eliding) large arrays.

Format (v2/v3, little-endian): magic ``GGUF``, u32 version, u64 tensor count, u64 kv count,
then kv pairs (string key, u32 type, value), then tensor infos (string name, u32 n_dims,
u64 dims[n_dims], u32 type, u64 offset).
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
_STRING, _ARRAY = 8, 9
# value type -> struct format of a scalar
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands."""


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    metadata: dict[str, Any]  # arrays longer than the limit are replaced by []
    array_lengths: dict[str, int]  # length of every array, elided or not
    parameter_count: int  # sum of the tensors' element counts


def _shortest_f32(value: float) -> float:
    """The shortest decimal that is the same float32 (1e-05, not 9.999999747378752e-06)."""
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", candidate))[0] == value:
            return candidate
    return value


class _Cursor:
    def __init__(self, buf: mmap.mmap):
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        n = self.unpack("Q")
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        self.pos += 8 + self.unpack("Q")

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        fmt = _SCALARS.get(vtype)
        if fmt is None:
            raise GGUFError(f"unknown GGUF value type {vtype} at byte {self.pos}")
        value = self.unpack(fmt)
        return _shortest_f32(value) if fmt == "f" else value

    def array(self, keep: bool) -> tuple[list[Any], int]:
        etype = self.unpack("I")
        count = self.unpack("Q")
        if keep:
            return [self.value(etype) for _ in range(count)], count
        if etype == _STRING:
            for _ in range(count):
                self.skip_string()
        elif etype == _ARRAY:
            for _ in range(count):
                self.array(keep=False)
        elif etype in _SCALARS:
            self.pos += count * struct.calcsize("<" + _SCALARS[etype])
        else:
            raise GGUFError(f"unknown GGUF array element type {etype}")
        return [], count


def read_header(path: Path, max_array: int | None = 5) -> GGUFHeader:
    """The header of the GGUF file at ``path``; arrays above ``max_array`` items (None: keep all)
    are returned as [] (Ollama's ``/api/show`` does the same unless ``verbose``)."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != MAGIC:
            raise GGUFError(f"{path} is not a GGUF file")
        cur = _Cursor(buf)
        cur.pos = 4
        version = cur.unpack("I")
        if version < 2:
            raise GGUFError(f"{path}: GGUF version {version} is not supported")
        tensor_count = cur.unpack("Q")
        kv_count = cur.unpack("Q")
        metadata: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        try:
            for _ in range(kv_count):
                key = cur.string()
                vtype = cur.unpack("I")
                if vtype == _ARRAY:
                    start = cur.pos
                    cur.pos += 4
                    count = cur.unpack("Q")
                    cur.pos = start
                    values, lengths[key] = cur.array(keep=max_array is None or count <= max_array)
                    metadata[key] = values
                else:
                    metadata[key] = cur.value(vtype)
            parameters = 0
            for _ in range(tensor_count):
                cur.skip_string()
                n_dims = cur.unpack("I")
                dims = struct.unpack_from(f"<{n_dims}Q", buf, cur.pos)
                cur.pos += 8 * n_dims + 4 + 8  # dims, type, offset
                parameters += math.prod(dims)
        except struct.error as exc:
            raise GGUFError(f"{path}: truncated GGUF header ({exc})") from exc
    return GGUFHeader(metadata=metadata, array_lengths=lengths, parameter_count=parameters)
