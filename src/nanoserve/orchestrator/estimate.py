"""A model's memory before its first load: the worker runtime's baseline plus the model's own parts.

The model's parts are the engine's fact: its profile's ``model_parts`` (``nanoserve.profiles``;
llama.cpp from the GGUF header of the file it will serve, sentence-transformers from the model
directory, mock from ``options.memory_mib``); an engine without a profile counts the runtime
baseline only.

The baseline (Python, the worker app, the engine's libraries) is measured once per engine in a
probe process (``baseline.py``) and kept in the footprints file. After a load the measured
footprint replaces all of this (see ``meter.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from nanoserve.config import ModelConfig
from nanoserve.errors import NanoserveError
from nanoserve.orchestrator.footprints import FootprintStore, footprint_key
from nanoserve.orchestrator.memory import RAM, gpu_name
from nanoserve.orchestrator.planner import MIB
from nanoserve.profiles import ModelParts, profile_for

log = logging.getLogger("nanoserve.orchestrator")

FALLBACK_RUNTIME = 64 * MIB  # when the runtime cannot be measured

BaselineProbe = Callable[[str], Awaitable[dict[str, int]]]


@dataclass(frozen=True)
class Estimate:
    devices: dict[str, int]  # bytes per device
    parts: dict[str, int] = field(default_factory=dict)  # runtime, weights, kv_cache, compute, ... (bytes)
    basis: str = ""  # what it was computed from

    @property
    def total(self) -> int:
        return sum(self.devices.values())


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
        profile = profile_for(config.engine)
        if profile.runtime:
            model, runtime = await asyncio.gather(
                asyncio.to_thread(profile.model_parts, config, self._data_dir),
                self.baseline(profile.runtime_name(config, self._data_dir)),
            )
        else:  # not our worker: no runtime of ours to add
            model, runtime = await asyncio.to_thread(profile.model_parts, config, self._data_dir), {}
        estimate = combine(model, runtime, self._gpus)
        log.info("%s: estimated %d MiB (%s)", config.id, estimate.total // MIB, estimate.basis)
        return estimate

    async def baseline(self, engine: str) -> dict[str, int]:
        """The runtime baseline of ``engine`` (or ``engine:variant``, ``EngineProfile.runtime_name``)."""
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
