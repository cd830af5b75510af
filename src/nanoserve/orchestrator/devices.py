"""GPUs the planner places models on: NVML's real ones, or simulated ones from the config.

``devices:`` in the config declares simulated GPUs (name, total MiB), as seed 003's
``WORKER_SIMULATE_GPU_COUNT``/``_VRAM_MB`` did: the same placement, planning and status code runs
on a machine without a GPU. A worker on a simulated GPU (the mock engine's ``vram_mib``) records
what it holds in a ledger file under ``data_dir/simgpu/<pid>.json``; what a simulated GPU has in
use is the sum over the ledgers of processes still alive, read the way NVML's per-process list
is. ``SimulatedGpus`` has the interface of ``memory.Nvml``, so the meter, the planner and
``/models/status`` do not know which one they have.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from nanoserve.config import ModelConfig, Settings
from nanoserve.orchestrator.memory import DeviceMemory, Nvml, alive
from nanoserve.orchestrator.planner import MIB
from nanoserve.wire.simgpu import read_ledger

log = logging.getLogger("nanoserve.orchestrator")


def ledger_dir(data_dir: Path) -> Path:
    return data_dir / "simgpu"


class SimulatedGpus:
    def __init__(self, devices: Iterable[tuple[str, int, str]], directory: Path):
        self._devices = list(devices)  # (name, total bytes, label)
        self._dir = directory

    @property
    def available(self) -> bool:
        return bool(self._devices)

    def _ledgers(self) -> dict[int, tuple[str, int]]:
        held: dict[int, tuple[str, int]] = {}
        if not self._dir.is_dir():
            return held
        for path in self._dir.glob("*.json"):
            if (entry := read_ledger(path)) is None:
                continue
            pid, device, size = entry
            if alive([pid]):
                held[pid] = (device, size)
            else:
                path.unlink(missing_ok=True)  # its process is gone: so is its memory
        return held

    def devices(self) -> list[DeviceMemory]:
        used: dict[str, int] = {}
        for device, size in self._ledgers().values():
            used[device] = used.get(device, 0) + size
        return [
            DeviceMemory(name, total, used.get(name, 0), max(0, total - used.get(name, 0)), label)
            for name, total, label in self._devices
        ]

    def process_bytes(self, pids: Iterable[int]) -> dict[str, int]:
        wanted = set(pids)
        used: dict[str, int] = {}
        for pid, (device, size) in self._ledgers().items():
            if pid in wanted:
                used[device] = used.get(device, 0) + size
        return used

    def close(self) -> None:
        pass


def gpu_provider(settings: Settings, nvml: Nvml) -> Nvml | SimulatedGpus:
    """The simulated GPUs the config declares, else NVML's (which may be none)."""
    if not settings.devices:
        return nvml
    nvml.close()
    declared = [(d.name, d.total_mib * MIB, d.label) for d in settings.devices]
    return SimulatedGpus(declared, ledger_dir(settings.data_dir))


def on_node(device: str, node: str) -> str:
    """The planner's name for ``device`` ("ram", "gpu0") of a cluster node."""
    return f"{device}@{node}"


def node_of(device: str | None) -> str | None:
    """The cluster node a placed device is on (None: this machine)."""
    return (device.partition("@")[2] or None) if device else None


def reserves(config: ModelConfig) -> dict[str, float]:
    """The Ray resources one replica of ``config`` reserves on its node (memory aside)."""
    wanted = {"CPU": float(config.effective_threads), "GPU": config.placement.num_gpus}
    wanted.update(config.placement.resources)
    return {k: v for k, v in wanted.items() if v > 0}


def relocate(footprint: Mapping[str, int], device: str | None) -> dict[str, int]:
    """``footprint`` with its GPU part on ``device`` (measured or estimated on another GPU); a
    device on a cluster node (``ram@<node>``, ``gpu1@<node>``) puts every part on that node."""
    device, _, node = (device or "").partition("@")
    if not device.startswith("gpu"):
        moved = dict(footprint)
    else:
        moved = {d: size for d, size in footprint.items() if not d.startswith("gpu")}
        on_gpu = sum(size for d, size in footprint.items() if d.startswith("gpu"))
        if on_gpu:
            moved[device] = on_gpu
    return {f"{d}@{node}": size for d, size in moved.items()} if node else moved


def place(need_gpu: int, free: Mapping[str, int], replicas_on: Mapping[str, int]) -> str | None:
    """The GPU for a replica that needs ``need_gpu`` bytes of one: among those with room, the one
    with the fewest replicas of the same model (spread first), then the most free, then by name.
    None when no GPU has room (the planner then says why, or evicts to make it)."""
    fits = [d for d, room in free.items() if room >= need_gpu]
    if not fits:
        return None
    return min(fits, key=lambda d: (replicas_on.get(d, 0), -free[d], d))


def evict_on(need: int, free: Mapping[str, int], budgets: Mapping[str, int]) -> str | None:
    """Where to make room when no device has ``need`` free: the device with the most free among
    those whose whole budget could hold it (then by name); None when there is no such device.
    A bigger device that is fuller beats a smaller emptier one the model can never fit on."""
    could = [d for d in free if budgets.get(d, 0) >= need]
    return min(could, key=lambda d: (-free[d], d), default=None)
