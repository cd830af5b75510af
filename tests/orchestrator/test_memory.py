"""Memory probes: RAM of real processes, GPUs through a fake NVML, budgets, release checks."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_nvml import FakeGpu, FakeNvml

from nanoserve.config import MemorySettings, Settings
from nanoserve.orchestrator.footprints import FootprintStore
from nanoserve.orchestrator.memory import (
    RAM,
    DeviceMemory,
    Nvml,
    alive,
    budgets,
    kill_group,
    measure_worker,
    process_tree,
    ram_footprint,
    reset_peak,
)
from nanoserve.orchestrator.meter import Meter
from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.orchestrator.planner import MIB

GIB = 1 << 30

# A child that allocates MiB on request ("alloc N" / "free"), answering "ok" each time.
ALLOCATOR = """
import sys
blocks = []
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "alloc":
        block = bytearray(int(arg) << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        blocks.append(block)
        del block
    elif cmd == "free":
        blocks.clear()
    print("ok", flush=True)
"""


class Allocator:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ALLOCATOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"


@pytest.fixture
def allocator() -> Iterator[Allocator]:
    child = Allocator()
    yield child
    child.proc.kill()
    child.proc.wait()


def test_ram_footprint_sees_allocations(allocator: Allocator) -> None:
    before = ram_footprint(allocator.proc.pid)
    assert before is not None
    allocator.send("alloc 100")
    after = ram_footprint(allocator.proc.pid)
    assert after is not None and after - before >= 100 * MIB


def test_ram_footprint_keeps_the_peak_until_reset(allocator: Allocator) -> None:
    reset_peak(allocator.proc.pid)
    allocator.send("alloc 150")
    allocator.send("free")
    peak = ram_footprint(allocator.proc.pid)
    assert peak is not None and peak >= 150 * MIB
    reset_peak(allocator.proc.pid)
    now = ram_footprint(allocator.proc.pid)
    assert now is not None and now < 100 * MIB


def test_ram_footprint_of_a_gone_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert ram_footprint(proc.pid) is None
    assert alive([proc.pid]) == []


def test_process_tree_and_group_kill() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; subprocess.Popen(['sleep', '60']); time.sleep(60)",
        ],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while len(process_tree(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [p.pid for p in process_tree(parent.pid)]
        assert len(pids) == 2 and set(alive(pids)) == set(pids)
        kill_group(parent.pid)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(pids) == []
    finally:
        kill_group(parent.pid)


def test_budgets_default_to_total_minus_margin() -> None:
    devices = [DeviceMemory(RAM, 24 * GIB, 0, 24 * GIB), DeviceMemory("gpu0", 8 * GIB, 0, 8 * GIB)]
    assert budgets(devices, MemorySettings()) == {RAM: 24 * GIB - 2048 * MIB, "gpu0": 8 * GIB - 512 * MIB}
    configured = MemorySettings(budget_mib=1000, gpu_budget_mib=300, margin_mib=0)
    assert budgets(devices, configured) == {RAM: 1000 * MIB, "gpu0": 300 * MIB}
    assert budgets([DeviceMemory(RAM, 1 * GIB, 0, 1 * GIB)], MemorySettings(margin_mib=4096)) == {RAM: 0}


def test_nvml_devices_and_process_memory() -> None:
    fake = FakeNvml(
        [
            FakeGpu("Fake A100", 40 * GIB, {111: 3 * GIB, 222: 1 * GIB}, other_used=GIB),
            FakeGpu("Fake T4", 16 * GIB, {111: 2 * GIB}),
        ]
    )
    nvml = Nvml(fake)
    assert nvml.available and fake.initialised
    assert nvml.devices() == [
        DeviceMemory("gpu0", 40 * GIB, 5 * GIB, 35 * GIB, "Fake A100"),
        DeviceMemory("gpu1", 16 * GIB, 2 * GIB, 14 * GIB, "Fake T4"),
    ]
    assert nvml.process_bytes([111]) == {"gpu0": 3 * GIB, "gpu1": 2 * GIB}
    assert nvml.process_bytes([222, 333]) == {"gpu0": 1 * GIB}
    assert nvml.process_bytes([333]) == {}
    nvml.close()
    assert fake.shutdowns == 1
    assert nvml.devices() == []


def test_no_nvml_library_means_no_gpu() -> None:
    nvml = Nvml(FakeNvml([FakeGpu("x", GIB)], library=False))
    assert not nvml.available
    assert nvml.devices() == [] and nvml.process_bytes([1]) == {}
    assert not Nvml(None).available


def test_measure_worker_adds_gpu_memory(allocator: Allocator) -> None:
    allocator.send("alloc 20")
    fake = FakeNvml([FakeGpu("Fake", 8 * GIB, {allocator.proc.pid: 700 * MIB})])
    measured = measure_worker(allocator.proc.pid, Nvml(fake))
    assert measured is not None
    assert measured["gpu0"] == 700 * MIB and measured[RAM] >= 20 * MIB


async def test_status_lists_fake_gpus_with_budgets(tmp_path: Path) -> None:
    fake = FakeNvml([FakeGpu("Fake L4", 24 * GIB, other_used=GIB)])
    settings = Settings(data_dir=tmp_path, models=[], memory=MemorySettings(gpu_margin_mib=1024))
    orchestrator = Orchestrator(settings, nvml=fake)
    status = await orchestrator.status()
    ram, gpu = status["devices"]
    assert ram["name"] == "ram" and ram["budget_mib"] == ram["total_mib"] - 2048
    assert gpu == {
        "name": "gpu0",
        "label": "Fake L4",
        "total_mib": 24 * 1024,
        "used_mib": 1024,
        "free_mib": 23 * 1024,
        "budget_mib": 23 * 1024,
        "models_mib": 0,
    }
    await orchestrator.shutdown()
    assert fake.shutdowns == 1


def test_without_nvml_only_ram(tmp_path: Path) -> None:
    orchestrator = Orchestrator(Settings(data_dir=tmp_path, models=[]), nvml=None)
    assert [d.name for d in orchestrator.devices()] == [RAM]
    assert orchestrator.memory.budgets.keys() == {RAM}


def _stopped(pid: int) -> SimpleNamespace:
    """A stopped process handle as the meter sees it: its pid, and a kill of its whole group."""
    return SimpleNamespace(pid=pid, kill_all=lambda: kill_group(pid))


def _release_meter(gpu: Nvml) -> Meter:
    return Meter(FootprintStore(Path("/nonexistent")), gpu, release_timeout=0.5)


def _exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


ESCAPING_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'], start_new_session=True)\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _spawn_escaping_tree() -> tuple[subprocess.Popen[str], int]:
    """A process whose child left its process group and ignores SIGTERM."""
    parent = subprocess.Popen(
        [sys.executable, "-c", ESCAPING_CHILD], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


async def test_release_confirmed_when_the_worker_is_gone() -> None:
    pid = _exited_pid()
    meter = _release_meter(Nvml(None))
    assert await meter.confirm_released(SimpleNamespace(id="m"), _stopped(pid), [pid])  # type: ignore[arg-type]


async def test_lingering_processes_are_killed() -> None:
    parent, child = _spawn_escaping_tree()
    try:
        pids = [parent.pid, child]
        meter = _release_meter(Nvml(None))
        released = await meter.confirm_released(SimpleNamespace(id="m"), _stopped(parent.pid), pids)  # type: ignore[arg-type]
        assert released and alive(pids) == []
    finally:
        kill_group(parent.pid)
        kill_group(child)
        parent.communicate()


async def test_release_waits_for_gpu_memory() -> None:
    pid = _exited_pid()
    gpu = FakeGpu("Fake", 8 * GIB, {pid: GIB})
    meter = _release_meter(Nvml(FakeNvml([gpu])))
    worker = _stopped(pid)
    assert not await meter.confirm_released(SimpleNamespace(id="m"), worker, [pid])  # type: ignore[arg-type]
    gpu.processes.clear()  # NVML no longer lists it
    assert await meter.confirm_released(SimpleNamespace(id="m"), worker, [pid])  # type: ignore[arg-type]
