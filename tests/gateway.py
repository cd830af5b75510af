"""A real gateway in a subprocess, on a free 127.0.0.1 port (like vLLM's RemoteOpenAIServer)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from nanoserve.wire.client import unix_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    def __init__(
        self,
        data_dir: Path,
        config: dict[str, Any] | None = None,
        *,
        start_timeout: float = 60.0,
        port: int | None = None,
        env: dict[str, str] | None = None,
        launcher: list[str] | None = None,
    ):
        """``launcher``: the command before nanoserve's arguments (default ``python -m nanoserve``)."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "gateway.log"
        cmd = [
            *(launcher or [sys.executable, "-m", "nanoserve"]),
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
        ]
        if config is not None:
            config_path = data_dir / "config.yaml"
            config_path.write_text(yaml.safe_dump(config))
            cmd += ["--config", str(config_path)]
        environ = dict(os.environ, NANOSERVE_HOME=str(data_dir), **(env or {}))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=environ, start_new_session=True)
        self._wait(start_timeout)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120), **kwargs)

    def worker_pids(self) -> list[int]:
        """Pids of this gateway's workers (children of its process)."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def worker_client(address: str, timeout: float = 30.0) -> httpx.Client:
    """A client straight to a worker, by the address ``/models/status`` shows (``unix:PATH`` for
    our own workers on this machine, a URL for others)."""
    if (path := unix_path(address)) is not None:
        transport = httpx.HTTPTransport(uds=path)
        return httpx.Client(transport=transport, base_url="http://worker", timeout=timeout)
    return httpx.Client(base_url=address, timeout=timeout)


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


MOCK_CONFIG: dict[str, Any] = {
    "models": [
        {
            "id": "mock-chat",
            "aliases": ["mc"],
            "engine": "mock",
            "kind": "chat",
            "context_length": 512,
            "options": {"tokens_per_second": 500},
        },
        {"id": "mock-embed", "engine": "mock-embedding", "kind": "embedding"},
    ]
}
