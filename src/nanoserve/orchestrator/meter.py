"""Measure what a loaded model really takes, and confirm it is given back after an unload.

After a load the worker is warmed up at full slots (``parallel`` tiny requests at once, so every
slot's buffers are touched), then its footprint is measured: RAM as in ``memory.ram_footprint``
(peak since the load finished), GPU memory per process through NVML. The measurement is merged
into the footprints file under the model's settings key and from then on is what the planner
counts. A last measurement is taken just before the worker is stopped, so a footprint that grew
while serving is remembered too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from nanoserve.errors import NanoserveError
from nanoserve.orchestrator.devices import relocate
from nanoserve.orchestrator.footprints import FootprintStore, footprint_key
from nanoserve.orchestrator.handles import WorkerHandle
from nanoserve.orchestrator.memory import Nvml, alive, kill_process
from nanoserve.orchestrator.planner import MIB
from nanoserve.wire.headers import WARM_UP_HEADER

if TYPE_CHECKING:
    from nanoserve.orchestrator.instance import ModelInstance

log = logging.getLogger("nanoserve.orchestrator")

WARM_UP_TIMEOUT = 60.0
WARM_UP_HEADERS = {WARM_UP_HEADER: "1"}  # the worker leaves these requests out of its metrics
RELEASE_TIMEOUT = 5.0  # seconds for a stopped worker's processes to disappear before a group kill
_POLL = 0.05


def _warm_up_request(instance: ModelInstance) -> tuple[str, bytes]:
    if instance.config.kind == "embedding":
        body: dict[str, Any] = {"model": instance.id, "input": "warm up"}
        return "/v1/embeddings", json.dumps(body).encode()
    if instance.config.kind == "rerank":
        body = {"model": instance.id, "query": "warm up", "documents": ["warm up"]}
        return "/v1/rerank", json.dumps(body).encode()
    body = {"model": instance.id, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
    return "/v1/completions", json.dumps(body).encode()


class Meter:
    def __init__(self, store: FootprintStore, gpu: Nvml, *, release_timeout: float = RELEASE_TIMEOUT):
        self._store = store
        self._gpu = gpu
        self._release_timeout = release_timeout

    async def measure(
        self, instance: ModelInstance, worker: WorkerHandle, *, after_load: bool, warm_up: bool = True
    ) -> dict[str, int] | None:
        """Measure ``worker`` and record the footprint. ``after_load``: forget the load's peak
        first, and warm the worker up at full slots (unless ``warm_up`` is off)."""
        try:
            if after_load:
                await asyncio.to_thread(worker.reset_peak)
                if warm_up and worker.speaks_nanoserve:  # others would count the warm-up as traffic
                    await self._warm_up(instance, worker)
            measured = await asyncio.to_thread(worker.memory, self._gpu)
        except (NanoserveError, OSError, TimeoutError) as exc:
            log.debug("%s: measuring the worker failed: %s", instance.id, exc)
            return None
        if not measured or not worker.alive:  # {}: nothing held here (a remote backend)
            return None
        recorded = await asyncio.to_thread(
            # one record per config, its GPU part on gpu0: each replica relocates it to its own GPU
            self._store.record_footprint,
            footprint_key(instance.config),
            instance.id,
            relocate(measured, "gpu0"),
        )
        instance.measured = recorded
        log.info(
            "%s: measured %d MiB (recorded %d MiB, estimated %s MiB)",
            instance.id,
            sum(measured.values()) // MIB,
            sum(recorded.values()) // MIB,
            sum(instance.estimated.values()) // MIB if instance.estimated else "?",
        )
        return measured

    async def _warm_up(self, instance: ModelInstance, worker: WorkerHandle) -> None:
        path, body = _warm_up_request(instance)

        async def one() -> None:
            try:
                response = await worker.client.post(path, body, headers=WARM_UP_HEADERS)
                try:
                    await response.read()
                finally:
                    response.close()
            except NanoserveError as exc:
                log.debug("%s: warm-up request failed: %s", instance.id, exc.message)
                return
            if response.status_code != 200:
                log.debug("%s: warm-up request answered %d", instance.id, response.status_code)

        async with asyncio.timeout(WARM_UP_TIMEOUT), asyncio.TaskGroup() as group:
            for _ in range(instance.config.parallel):
                group.create_task(one())

    async def confirm_released(self, instance: ModelInstance, worker: WorkerHandle, pids: list[int]) -> bool:
        """Wait until the stopped worker's processes (and their GPU memory) are gone; kill its
        process group if they linger. False if even that did not free them."""
        if await self._released(pids, self._release_timeout):
            return True
        log.warning(
            "%s: the stopped backend (pid %s) still holds memory; killing its process group",
            instance.id,
            worker.pid,
        )
        worker.kill_all()
        for pid in await asyncio.to_thread(alive, pids):  # a descendant that left the group
            kill_process(pid)
        if await self._released(pids, self._release_timeout):
            return True
        log.error("%s: processes %s of the stopped worker did not go away", instance.id, alive(pids))
        return False

    async def _released(self, pids: list[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            running = await asyncio.to_thread(alive, pids)
            on_gpu = await asyncio.to_thread(self._gpu.process_bytes, pids) if self._gpu.available else {}
            if not running and not on_gpu:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL)
