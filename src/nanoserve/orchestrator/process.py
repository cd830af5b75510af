"""Start, health-check and stop one worker process.

The gateway binds a listening socket on 127.0.0.1 and hands it to the worker (``--fd``), so the
worker's address is known before it starts and no other process can take the port. Health is
polled with a deadline and growing intervals, never a fixed sleep; a worker that exits while
starting fails at once with the tail of its log. Each worker runs in its own session (process
group), so stopping it also stops anything it started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import EngineError
from nanoserve.sources import resolve_source
from nanoserve.wire.client import WorkerClient

log = logging.getLogger("nanoserve.orchestrator")

LOG_TAIL_BYTES = 4000


def worker_command(config: ModelConfig, settings: Settings, fd: int) -> list[str]:
    """The ``nanoserve worker`` command line for a model."""
    cmd = [
        sys.executable,
        "-m",
        "nanoserve",
        "worker",
        "--engine",
        config.engine,
        "--name",
        config.id,
        "--kind",
        config.kind,
        "--context-length",
        str(config.context_length),
        "--parallel",
        str(config.parallel),
        "--threads",
        str(config.effective_threads),
        "--options",
        json.dumps(config.options),
        "--data-dir",
        str(settings.data_dir),
        "--fd",
        str(fd),
        "--parent-pid",
        str(os.getpid()),
    ]
    if config.source:
        cmd += ["--model", str(resolve_source(config.source))]
    if config.chat_template:
        cmd += ["--chat-template", config.chat_template]
    if config.kind == "chat":
        cmd += ["--tool-format", config.tool_format]
    return cmd


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass(eq=False)
class WorkerProcess:
    """A running worker: its process, address and HTTP client."""

    model: str
    proc: asyncio.subprocess.Process
    port: int
    log_path: Path
    client: WorkerClient
    started_at: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def exited_within(self, seconds: float) -> bool:
        """True once the process has exited (waiting up to ``seconds`` for it)."""
        if self.alive:
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), seconds)
            except TimeoutError:
                return False
        return True

    def log_tail(self) -> str:
        return _log_tail(self.log_path)

    async def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if not self.alive:
                raise EngineError(
                    f"worker for '{self.model}' exited with code {self.proc.returncode} while loading. "
                    f"Log ({self.log_path}):\n{self.log_tail()}"
                )
            try:
                status, body = await self.client.get_json("/health", timeout=2.0)
            except EngineError:
                status, body = 0, {}
            if status == 200:
                return
            if status >= 500 and status != 503:
                raise EngineError(f"model '{self.model}' failed to load: {body.get('error', body)}")
            if time.monotonic() >= deadline:
                raise EngineError(
                    f"worker for '{self.model}' did not become healthy within {timeout:.0f}s. "
                    f"Log ({self.log_path}):\n{self.log_tail()}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        """SIGTERM the worker's process group, then SIGKILL it after ``timeout``.

        With ``kill`` the group is killed at once: requests still streaming from it see their
        connection reset (the gateway ends their streams with an error event).
        """
        if self.alive and not kill:
            await self.client.close()
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                log.warning("worker for %s did not stop in %.0fs; killing it", self.model, timeout)
        # Anything left in the group (or a worker that ignored SIGTERM) is killed.
        _signal_group(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        await self.client.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def launch_worker(config: ModelConfig, settings: Settings) -> WorkerProcess:
    """Start a worker for ``config`` (not yet healthy: call ``wait_healthy``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: no Nagle delay between a response's header and body.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"worker-{config.id.replace(':', '_').replace('/', '_')}.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if settings.observability.otlp_endpoint:  # the worker traces to the same collector
        env["NANOSERVE_OTLP_ENDPOINT"] = settings.observability.otlp_endpoint
    try:
        cmd = worker_command(config, settings, sock.fileno())
        with log_path.open("ab") as log_file:
            log_file.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {config.id}\n".encode())
            log_file.flush()
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                pass_fds=(sock.fileno(),),
                start_new_session=True,
                env=env,
            )
    finally:
        sock.close()
    client = WorkerClient(f"http://127.0.0.1:{port}")
    log.info("started worker pid %d for %s on 127.0.0.1:%d", proc.pid, config.id, port)
    return WorkerProcess(model=config.id, proc=proc, port=port, log_path=log_path, client=client)
