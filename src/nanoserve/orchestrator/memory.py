"""What the machine has and what a worker uses: RAM through psutil, GPU memory through NVML.

Every call here is blocking (``/proc`` reads, NVML calls): the orchestrator runs them in a
thread. NVML comes from the ``nvidia-ml-py`` package (module ``pynvml``); without the package,
the library or a GPU, the machine simply has no GPU devices. Tests pass a fake NVML module.

A worker's RAM footprint is its processes' unique memory (USS) plus the part of its large file
mappings (model weights, and big libraries such as libtorch) that other processes share too, so
a file mapped by two workers counts fully in each and a measurement does not depend on what else
runs on the machine.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import psutil

from nanoserve.config import MemorySettings
from nanoserve.orchestrator.planner import MIB

log = logging.getLogger("nanoserve.orchestrator")

RAM = "ram"
MAPPED_FILE_MIN_BYTES = 1 << 20  # smaller shared mappings (libc, ...) are left out


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    name: str  # "ram", "gpu0", ...
    total: int  # bytes
    used: int
    free: int
    label: str = ""  # e.g. the GPU's product name


def gpu_name(index: int) -> str:
    return f"gpu{index}"


def load_nvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class Nvml:
    """GPU memory through an NVML module (``pynvml`` or a fake with the same functions)."""

    def __init__(self, nvml: Any | None):
        self._nvml = nvml
        self._handles: list[Any] = []
        if nvml is None:
            return
        try:
            nvml.nvmlInit()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        except nvml.NVMLError as exc:  # no driver or no GPU: a CPU machine
            log.debug("NVML unavailable: %s", exc)
            self._nvml = None

    @property
    def available(self) -> bool:
        return self._nvml is not None and bool(self._handles)

    def devices(self) -> list[DeviceMemory]:
        if self._nvml is None:
            return []
        devices = []
        for i, handle in enumerate(self._handles):
            info = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            name = self._nvml.nvmlDeviceGetName(handle)
            label = name.decode() if isinstance(name, bytes) else str(name)
            devices.append(DeviceMemory(gpu_name(i), int(info.total), int(info.used), int(info.free), label))
        return devices

    def process_bytes(self, pids: Iterable[int]) -> dict[str, int]:
        """GPU memory used by ``pids``, per device (devices where they use none are left out)."""
        if self._nvml is None:
            return {}
        wanted = set(pids)
        used: dict[str, int] = {}
        for i, handle in enumerate(self._handles):
            try:
                procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except self._nvml.NVMLError as exc:
                log.debug("NVML process list of gpu%d: %s", i, exc)
                continue
            total = sum(int(p.usedGpuMemory or 0) for p in procs if p.pid in wanted)
            if total:
                used[gpu_name(i)] = total
        return used

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass
            self._nvml = None


def ram_device() -> DeviceMemory:
    vm = psutil.virtual_memory()
    return DeviceMemory(RAM, vm.total, vm.total - vm.available, vm.available)


def budgets(devices: Iterable[DeviceMemory], settings: MemorySettings) -> dict[str, int]:
    """Bytes the models may use on each device: configured, or the total minus a margin."""
    result: dict[str, int] = {}
    for device in devices:
        if device.name == RAM:
            mib = (
                settings.budget_mib
                if settings.budget_mib is not None
                else device.total // MIB - settings.margin_mib
            )
        else:
            mib = (
                settings.gpu_budget_mib
                if settings.gpu_budget_mib is not None
                else device.total // MIB - settings.gpu_margin_mib
            )
        result[device.name] = max(0, mib) * MIB
    return result


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def ram_footprint(pid: int) -> int | None:
    """Unique memory of ``pid`` and its descendants plus the shared part of their large mapped files.

    Each process counts at its peak since ``reset_peak`` (its peak resident size less what it
    shares with others now), so a measurement taken after a burst still sees the burst.
    """
    total = 0
    found = False
    for proc in process_tree(pid):
        try:
            mem = proc.memory_full_info()
            current = mem.uss
            for region in proc.memory_maps(grouped=True):
                if region.path.startswith("/") and region.rss >= MAPPED_FILE_MIN_BYTES:
                    current += region.shared_clean + region.shared_dirty
        except psutil.Error:  # exited meanwhile
            continue
        peak = _peak_rss(proc.pid)
        total += current + max(0, peak - mem.rss) if peak is not None else current
        found = True
    return total if found else None


def measure_worker(pid: int, gpu: Nvml) -> dict[str, int] | None:
    """Bytes per device used by the process ``pid`` and its descendants (blocking)."""
    ram = ram_footprint(pid)
    if ram is None:
        return None
    pids = [p.pid for p in process_tree(pid)]
    return {RAM: ram, **gpu.process_bytes(pids)}


def _peak_rss(pid: int) -> int | None:
    """The process's peak resident size (Linux ``VmHWM``), or None where unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak(pid: int) -> None:
    """Restart the peak of ``pid`` and its descendants (so load-time spikes are not counted)."""
    for proc in process_tree(pid):
        try:
            with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def alive(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that still run (a zombie holds no memory and counts as gone)."""
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.Error:
            continue
    return running


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_process(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
