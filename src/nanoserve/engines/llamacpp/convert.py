"""Convert a GGUF file to the served quantization once, with ``llama_model_quantize``.

The result is written to a temporary file next to the target and renamed into place, so a crash
or a concurrent start never leaves a half-written file under the final name; the next start
finds the file and reuses it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import llama_cpp

from nanoserve.engines.llamacpp.native import install_native_logging
from nanoserve.errors import EngineError
from nanoserve.profiles.llamacpp import FTYPES, Quantization, served_weights_path

log = logging.getLogger(__name__)


def quantize_file(source: Path, target: Path, quantize: str, *, threads: int) -> None:
    """Write ``source`` requantized to ``quantize`` at ``target`` (atomically)."""
    install_native_logging()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[quantize]
    params.allow_requantize = True
    params.nthread = threads
    try:
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise EngineError(f"converting {source.name} to {quantize} failed (llama_model_quantize rc={rc})")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_served_weights(
    source: Path,
    quantize: Quantization,
    data_dir: Path,
    *,
    threads: int,
    converting: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> Path:
    """The file to load: the source, a cached conversion, or a conversion made now (inside
    ``converting()``: the engine's load phase)."""
    target = served_weights_path(source, quantize, data_dir)
    if target == source or target.exists():
        return target
    log.info("converting %s to %s for faster CPU kernels (one time) -> %s", source.name, quantize, target)
    started = time.perf_counter()
    with converting():
        quantize_file(source, target, quantize, threads=threads)
    log.info("converted %s to %s in %.1f s", source.name, quantize, time.perf_counter() - started)
    return target
