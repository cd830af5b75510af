"""A fake NVML module: the functions of ``pynvml`` the orchestrator uses, over declared GPUs."""

from __future__ import annotations

from dataclasses import dataclass, field


class NVMLError(Exception):
    pass


class NVMLErrorLibraryNotFound(NVMLError):
    pass


@dataclass
class _Memory:
    total: int
    used: int
    free: int


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int | None


@dataclass
class FakeGpu:
    name: str
    total: int
    processes: dict[int, int] = field(default_factory=dict)  # pid -> bytes
    other_used: int = 0


class FakeNvml:
    """Pass an instance where the ``pynvml`` module would go."""

    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu] | None = None, *, library: bool = True):
        self.gpus = gpus or []
        self.library = library
        self.initialised = False
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if not self.library:
            raise NVMLErrorLibraryNotFound("NVML Shared Library Not Found")
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        return handle.name

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> _Memory:
        used = handle.other_used + sum(handle.processes.values())
        return _Memory(handle.total, used, handle.total - used)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu) -> list[_Process]:
        return [_Process(pid, size) for pid, size in handle.processes.items()]
