"""Our own worker: ``nanoserve worker --engine ...`` in a child process.

The gateway binds a listening socket and hands it to the worker (``--fd``), so the worker's
address is known before it starts and no other process can take it. A worker on this machine
listens on a Unix socket in a directory only the gateway's user can enter, so no other local user
can connect to it (on 127.0.0.1 any could; idle, it streams no faster than TCP did: benchmarks/
README.md, "1 stream"). A worker on a
cluster node listens on the node's address and answers only requests that carry its secret
(``ray.py``). The worker watches ``--parent-pid`` and exits when the gateway is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shutil
import socket
import sys
import tempfile
from functools import cache

from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import EngineError
from nanoserve.orchestrator.handles.base import HealthCheck, WorkerHandle, get_ok, poll_health
from nanoserve.orchestrator.handles.process import ProcessWorker, device_env, log_path_for
from nanoserve.sources import resolve_source
from nanoserve.wire.headers import WORKER_SECRET_ENV


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
        cmd += ["--model", str(resolve_source(config.source, settings.data_dir))]
    if config.chat_template:
        cmd += ["--chat-template", config.chat_template]
    if config.kind == "chat":
        cmd += ["--tool-format", config.tool_format]
    return cmd


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: no Nagle delay between a response's header and body.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, 0))
    sock.listen(1024)
    return sock


@cache
def socket_dir() -> str:
    """This gateway's directory for its workers' sockets (mode 0700; removed when it exits).
    Under the temp dir, not the data dir: a socket's path is limited to 107 bytes."""
    path = tempfile.mkdtemp(prefix="nanoserve-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


_socket_names = itertools.count(1)


def unix_listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.path.join(socket_dir(), f"worker-{next(_socket_names)}.sock"))
    sock.listen(1024)
    return sock


def worker_health(handle: WorkerHandle) -> HealthCheck:
    """The load check of our worker: ``/health`` 200 (ready), 503 (loading, in its ``phase``),
    other 5xx (failed)."""

    async def check() -> bool | str:
        try:
            status, body = await handle.client.get_json("/health", timeout=2.0)
        except EngineError:
            return False
        if status >= 500 and status != 503:  # 503: still loading
            raise EngineError(f"model '{handle.model}' failed to load: {body.get('error', body)}")
        if status == 503 and isinstance(body, dict) and isinstance(phase := body.get("phase"), str):
            return phase
        return status == 200

    return check


class LocalWorker(ProcessWorker):
    kind = "worker"
    speaks_nanoserve = True
    metrics_path = "/metrics"

    def __init__(
        self,
        config: ModelConfig,
        settings: Settings,
        device: str | None = None,
        *,
        host: str = "127.0.0.1",
        secret: str | None = None,
    ):
        """``host``/``secret``: a worker on a cluster node listens on the node's address and
        answers only requests carrying ``secret`` (``handles/ray.py``)."""
        super().__init__(config.id, log_path_for(settings.data_dir, "worker", config.id))
        self.config = config
        self.settings = settings
        self.device = device
        self.host = host
        self.secret = secret

    async def start(self) -> None:
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        env.update(device_env(self.device, self.settings))
        if self.secret:
            env[WORKER_SECRET_ENV] = self.secret
        if self.settings.observability.otlp_endpoint:  # the worker traces to the same collector
            env["NANOSERVE_OTLP_ENDPOINT"] = self.settings.observability.otlp_endpoint
        if self.secret:  # reached by a gateway on another node
            sock = listening_socket(self.host)
            self.listen_on(sock.getsockname()[1])
        else:
            sock = unix_listening_socket()
            self.listen_on_unix(sock.getsockname())
        try:
            argv = worker_command(self.config, self.settings, sock.fileno())
            await self.spawn(argv, env, pass_fds=(sock.fileno(),))
        finally:
            sock.close()

    async def wait_healthy(self, timeout: float) -> None:
        await poll_health(self, worker_health(self), timeout)

    async def stop(self, timeout: float | None = None, *, kill: bool = False) -> None:
        await super().stop(timeout, kill=kill)
        if self.unix:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix)

    async def healthy(self, timeout: float) -> bool:
        return await get_ok(self.client, "/health", timeout)
