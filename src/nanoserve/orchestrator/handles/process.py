"""A backend that is a process tree on this machine: our own worker, or a managed server.

The child runs in its own session (a new process group) with its output appended to
``data_dir/logs/<kind>-<model>.log``. Stopping sends the stop signal to the whole group, waits
the grace period, then kills the group; a crash kills the group too, so anything the child
started (vLLM's engine processes, for one) goes with it. Memory is the process tree's (see
``memory.ram_footprint``) plus NVML's per-pid VRAM where a GPU exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from nanoserve.config import Settings
from nanoserve.orchestrator.handles.base import read_log_tail
from nanoserve.orchestrator.memory import Nvml, kill_group, measure_worker, process_tree
from nanoserve.orchestrator.memory import reset_peak as _reset_peak
from nanoserve.wire.client import UNIX_PREFIX, WorkerClient
from nanoserve.wire.simgpu import DEVICE_ENV, SIMGPU_DIR_ENV
from nanoserve.wire.unixclient import UnixWorkerClient

log = logging.getLogger("nanoserve.orchestrator")


def device_env(device: str | None, settings: Settings) -> dict[str, str]:
    """The environment that puts a backend on its GPU: a simulated one's name and ledger
    directory, or ``CUDA_VISIBLE_DEVICES`` for a real one."""
    if device is None or not device.startswith("gpu"):
        return {}
    if settings.devices:
        return {DEVICE_ENV: device, SIMGPU_DIR_ENV: str(settings.data_dir / "simgpu")}
    return {DEVICE_ENV: device, "CUDA_VISIBLE_DEVICES": device.removeprefix("gpu")}


def log_path_for(data_dir: Path, kind: str, model: str) -> Path:
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir / f"{kind}-{model.replace(':', '_').replace('/', '_')}.log"


class ProcessWorker:
    """A child process group serving HTTP on ``127.0.0.1:port`` or on a Unix socket. Subclasses
    say what to run."""

    kind = "process"  # names the log file and the log lines
    slots: asyncio.Semaphore | None = None

    def __init__(
        self,
        model: str,
        log_path: Path,
        *,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_grace: float = 10.0,
    ):
        self.model = model
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.stop_grace = stop_grace
        self.port = 0  # chosen by ``start``
        self.host = "127.0.0.1"  # where it listens (a cluster node's address, see ``ray.py``)
        self.unix: str | None = None  # or the path of the Unix socket it listens on
        self.client = WorkerClient(self.address)
        self.started_at = time.time()
        self.proc: asyncio.subprocess.Process | None = None

    def listen_on(self, port: int) -> None:
        self.port = port
        self.client = WorkerClient(self.address)

    def listen_on_unix(self, path: str) -> None:
        self.unix = path
        self.client = UnixWorkerClient(self.address)

    @property
    def address(self) -> str:
        return f"{UNIX_PREFIX}{self.unix}" if self.unix else f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def spawn(self, argv: Sequence[str], env: Mapping[str, str], pass_fds: Sequence[int] = ()) -> None:
        with self.log_path.open("ab") as log_file:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log_file.write(f"\n=== {stamp} starting {self.model}: {argv[0]}\n".encode())
            log_file.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                pass_fds=tuple(pass_fds),
                start_new_session=True,
                env=dict(env),
            )
        self.started_at = time.time()
        log.info("started %s pid %d for %s on %s", self.kind, self.proc.pid, self.model, self.address)

    async def wait_exited(self) -> None:
        if self.proc is not None:
            await self.proc.wait()

    def exit_reason(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        return f"{self.kind} (pid {self.pid}) exited with code {code}"

    async def stop(self, timeout: float | None = None, *, kill: bool = False) -> None:
        """The stop signal to the process group, then SIGKILL after the grace period.

        With ``kill`` the group is killed at once: requests still streaming from it see their
        connection reset (the gateway ends their streams with an error event).
        """
        grace = self.stop_grace if timeout is None else timeout
        if self.proc is None:
            return
        if self.alive and not kill:
            await self.client.close()
            _signal_group(self.proc.pid, self.stop_signal)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                log.warning("%s for %s did not stop in %.0fs; killing it", self.kind, self.model, grace)
        # Anything left in the group (or a child that ignored the signal) is killed.
        _signal_group(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        await self.client.close()

    def kill_all(self) -> None:
        if self.proc is not None:
            kill_group(self.proc.pid)

    def memory(self, gpu: Nvml) -> dict[str, int] | None:
        return None if self.proc is None else measure_worker(self.proc.pid, gpu)

    def reset_peak(self) -> None:
        if self.proc is not None:
            _reset_peak(self.proc.pid)

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        return [p.pid for p in process_tree(self.proc.pid)] or [self.proc.pid]

    def log_tail(self) -> str:
        return read_log_tail(self.log_path)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
