"""Which GGUF file is served: a pure decision the gateway can make without importing llama_cpp.

With ``quantize: keep`` the source file is served as is. Otherwise the source is converted once
to a quantization whose CPU kernels are fast (Q8_0 or Q4_0) and cached as
``<data_dir>/weights/<sha256 prefix of the source>-<quant>.gguf``; a source already of that
type is served as is. The conversion itself lives in ``convert.py`` (it needs llama_cpp).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from nanoserve.engines.llamacpp.options import Quantization
from nanoserve.models import gguf

# llama.cpp's ``enum llama_ftype`` (LLAMA_FTYPE_MOSTLY_*), as stored in general.file_type.
FTYPES: dict[str, int] = {"q4_0": 2, "q4_1": 3, "q8_0": 7}
DIGEST_CHARS = 16
_CHUNK = 1 << 20


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
    try:
        return gguf.read_gguf_info(path).file_type
    except (gguf.GGUFError, OSError):
        return None


def file_type_name(ftype: int | None) -> str:
    """The engine's name for a file type, lower case as in ``quantize`` (``q8_0``, ``f16``)."""
    if ftype is None:
        return "unknown"
    return (gguf.file_type_name(ftype) or f"ftype-{ftype}").lower()


def served_weights_path(source: Path, quantize: Quantization, data_dir: Path) -> Path:
    """The GGUF file the engine serves for ``source`` under the ``quantize`` option."""
    if quantize == "keep" or gguf_file_type(source) == FTYPES[quantize]:
        return source
    return data_dir / "weights" / f"{source_digest(source)[:DIGEST_CHARS]}-{quantize}.gguf"
