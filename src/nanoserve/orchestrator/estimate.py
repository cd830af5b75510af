"""A model's memory before its first load: the worker runtime's baseline plus the model's own parts.

* llama.cpp: from the GGUF header of the file that will really be served. When the engine
  converts weights (``quantize: q8_0``, its default) and the converted file exists under
  ``data_dir/weights``, that file is read; otherwise the source's tensors are sized at the target
  type (``GGUFInfo.weights_bytes_as``). Then the KV cache for ``context_length x parallel`` cells
  (f16), the compute buffer llama.cpp reserves for one micro-batch of ``n_batch`` tokens (logits
  for the whole vocabulary plus the feed-forward and embedding activations; the attention scores
  too without flash attention) and the output buffer.
* sentence-transformers: the weight files in the model directory, plus the activations of one
  forward pass of ``max_batch_tokens`` tokens (from the model's ``config.json``).
* mock: the memory it is told to allocate (``options.memory_mib``).
* any other engine: the runtime baseline only.

The baseline (Python, the worker app, the engine's libraries) is measured once per engine in a
probe process (``baseline.py``) and kept in the footprints file. After a load the measured
footprint replaces all of this (see ``meter.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanoserve.config import ModelConfig
from nanoserve.errors import ConfigError, NanoserveError
from nanoserve.models.gguf import GGUFInfo, read_gguf_info
from nanoserve.orchestrator.footprints import FootprintStore, footprint_key
from nanoserve.orchestrator.memory import RAM, gpu_name
from nanoserve.orchestrator.planner import MIB
from nanoserve.sources import resolve_source

log = logging.getLogger("nanoserve.orchestrator")

F32 = 4
DEFAULT_QUANTIZE = "q8_0"  # the llama.cpp engine's default conversion
DEFAULT_N_BATCH = 512
DEFAULT_MAX_BATCH_TOKENS = 8192  # the sentence-transformers engine's default
FALLBACK_RUNTIME = 64 * MIB  # when the runtime cannot be measured
WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin", ".pt")

BaselineProbe = Callable[[str], Awaitable[dict[str, int]]]


@dataclass(frozen=True)
class Estimate:
    devices: dict[str, int]  # bytes per device
    parts: dict[str, int] = field(default_factory=dict)  # runtime, weights, kv_cache, compute, ... (bytes)
    basis: str = ""  # what it was computed from

    @property
    def total(self) -> int:
        return sum(self.devices.values())


@dataclass(frozen=True)
class ModelParts:
    """The model's own memory (without the runtime) and the share of it placed on GPU 0."""

    parts: dict[str, int]
    basis: str
    gpu_fraction: float = 0.0
    gpu_parts: tuple[str, ...] = ()  # parts placed on the GPU, by ``gpu_fraction`` (compute: fully)


def _engine_options(config: ModelConfig) -> dict[str, Any]:
    """The llama.cpp engine's options with its defaults, without importing llama_cpp."""
    try:
        from nanoserve.engines.llamacpp.options import LlamaCppOptions
    except ImportError:
        return {
            "quantize": DEFAULT_QUANTIZE,
            "n_batch": DEFAULT_N_BATCH,
            "flash_attn": "auto",
            "kv_unified": False,
            **config.options,
        }
    return LlamaCppOptions.model_validate(config.options).model_dump()


def served_gguf(source: Path, quantize: str, data_dir: Path) -> tuple[Path, str | None]:
    """The file to read and the quantization to size its weights at (None: as they are)."""
    try:
        from nanoserve.engines.llamacpp.weights import served_weights_path
    except ImportError:
        return source, quantize
    served = served_weights_path(source, quantize, data_dir)  # type: ignore[arg-type]
    if served == source or served.exists():
        return served, None
    return source, quantize


def llamacpp_parts(
    info: GGUFInfo, config: ModelConfig, options: dict[str, Any], quantize: str | None
) -> ModelParts:
    """Weights, KV cache, compute and output buffers of a llama.cpp context for ``config``."""
    cells = config.parallel * config.context_length
    n_ubatch = max(int(options.get("n_batch", DEFAULT_N_BATCH)), config.parallel)
    vocab, n_ff, n_embd = info.vocab_size, info.feed_forward_length, info.embedding_length
    compute = n_ubatch * F32 * (vocab + 2 * n_ff + 4 * n_embd)
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
    gpu_layers = int(options.get("n_gpu_layers", 0) or 0)
    if gpu_layers and info.block_count:
        fraction = 1.0 if gpu_layers < 0 else min(1.0, gpu_layers / info.block_count)
        return ModelParts(parts, basis, fraction, ("weights", "kv_cache", "compute"))
    return ModelParts(parts, basis)


def _llamacpp(config: ModelConfig, data_dir: Path) -> ModelParts:
    if config.source is None:
        raise ConfigError(f"model '{config.id}': no source to estimate its memory from")
    options = _engine_options(config)
    path, quantize = served_gguf(resolve_source(config.source), str(options["quantize"]), data_dir)
    return llamacpp_parts(read_gguf_info(path), config, options, quantize)


def _sentence(config: ModelConfig, data_dir: Path) -> ModelParts:
    if config.source is None:
        raise ConfigError(f"model '{config.id}': no source to estimate its memory from")
    directory = resolve_source(config.source)
    files = [p for p in directory.rglob("*") if p.suffix in WEIGHT_FILE_SUFFIXES and p.is_file()]
    preferred = [p for p in files if p.suffix == ".safetensors"] or files
    weights = sum(p.stat().st_size for p in preferred)
    try:
        arch = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        arch = {}
    hidden = int(arch.get("hidden_size", 768))
    intermediate = int(arch.get("intermediate_size", 4 * hidden))
    heads = int(arch.get("num_attention_heads", 12))
    tokens = int(config.options.get("max_batch_tokens", DEFAULT_MAX_BATCH_TOKENS))
    # one layer's activations for a full batch: hidden states, feed-forward, attention scores
    activations = tokens * F32 * (4 * hidden + intermediate + heads * config.context_length)
    return ModelParts({"weights": weights, "activations": activations}, f"directory {directory.name}")


def _mock(config: ModelConfig, data_dir: Path) -> ModelParts:
    return ModelParts({"weights": int(config.options.get("memory_mib", 0)) * MIB}, "declared memory_mib")


def _command(config: ModelConfig, data_dir: Path) -> ModelParts:
    """A managed server: its declared ``memory_mib``, else the llama.cpp parts of a GGUF source
    (served as it is, f16 KV cache: what llama-server does by default)."""
    declared = config.options.get("memory_mib")
    if declared is not None:
        return ModelParts({"declared": int(declared) * MIB}, "declared memory_mib")
    if config.source is not None:
        path = resolve_source(config.source)
        if path.is_file():
            return llamacpp_parts(read_gguf_info(path), config, {"flash_attn": "auto"}, None)
    return ModelParts({}, "nothing declared (set options.memory_mib)")


def _remote(config: ModelConfig, data_dir: Path) -> ModelParts:
    return ModelParts({}, "remote: no memory here")


def _runtime_only(config: ModelConfig, data_dir: Path) -> ModelParts:
    return ModelParts({}, f"runtime of engine '{config.engine}' only")


MODEL_PARTS: dict[str, Callable[[ModelConfig, Path], ModelParts]] = {
    "llamacpp": _llamacpp,
    "sentence-transformers": _sentence,
    "mock": _mock,
    "mock-embedding": _mock,
    "command": _command,
    "remote": _remote,
}
NO_RUNTIME = frozenset({"command", "remote"})  # not our worker runtime: nothing to probe


def combine(model: ModelParts, runtime: dict[str, int], gpus: int) -> Estimate:
    """The estimate per device: the runtime on its devices, the model parts split by placement."""
    devices = dict(runtime)
    parts = {"runtime": sum(runtime.values()), **model.parts}
    on_gpu = model.gpu_fraction if gpus else 0.0
    for name, size in model.parts.items():
        share = 0
        if name in model.gpu_parts and on_gpu:
            share = size if name == "compute" else int(size * on_gpu)
            devices[gpu_name(0)] = devices.get(gpu_name(0), 0) + share
        devices[RAM] = devices.get(RAM, 0) + size - share
    return Estimate(devices, parts, model.basis)


class Estimator:
    """Estimates per model, computed once (file reads and the baseline probe run off the loop)."""

    def __init__(self, data_dir: Path, store: FootprintStore, probe: BaselineProbe, *, gpus: int = 0):
        self._data_dir = data_dir
        self._store = store
        self._probe = probe
        self._gpus = gpus
        self._estimates: dict[str, asyncio.Task[Estimate]] = {}
        self._baselines: dict[str, asyncio.Task[dict[str, int]]] = {}

    def cached(self, config: ModelConfig) -> Estimate | None:
        task = self._estimates.get(footprint_key(config))
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    async def estimate(self, config: ModelConfig) -> Estimate:
        key = footprint_key(config)
        task = self._estimates.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._estimates[key] = asyncio.create_task(
                self._compute(config), name=f"estimate:{config.id}"
            )
        return await asyncio.shield(task)

    async def _compute(self, config: ModelConfig) -> Estimate:
        parts_of = MODEL_PARTS.get(config.engine, _runtime_only)
        if config.engine in NO_RUNTIME:
            model, runtime = await asyncio.to_thread(parts_of, config, self._data_dir), {}
        else:
            model, runtime = await asyncio.gather(
                asyncio.to_thread(parts_of, config, self._data_dir), self.baseline(config.engine)
            )
        estimate = combine(model, runtime, self._gpus)
        log.info("%s: estimated %d MiB (%s)", config.id, estimate.total // MIB, estimate.basis)
        return estimate

    async def baseline(self, engine: str) -> dict[str, int]:
        task = self._baselines.get(engine)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._baselines[engine] = asyncio.create_task(
                self._baseline(engine), name=f"baseline:{engine}"
            )
        return await asyncio.shield(task)

    async def _baseline(self, engine: str) -> dict[str, int]:
        stored = await asyncio.to_thread(self._store.baseline, engine)
        if stored is not None:
            return stored
        try:
            measured = await self._probe(engine)
        except NanoserveError as exc:  # e.g. the engine is not installed: the load will say so
            log.warning(
                "cannot measure the runtime of engine %s (assuming %d MiB): %s",
                engine,
                FALLBACK_RUNTIME // MIB,
                exc.message,
            )
            return {RAM: FALLBACK_RUNTIME}
        log.info("runtime of engine %s: %d MiB", engine, sum(measured.values()) // MIB)
        await asyncio.to_thread(self._store.record_baseline, engine, measured)
        return measured
