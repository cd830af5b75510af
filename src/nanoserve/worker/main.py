"""Run one worker process: an engine behind the worker app, served by uvicorn.

The gateway passes an already-listening socket (``fd``), so it knows the address before the
worker starts and no port can be taken in between. A worker never outlives its gateway: the
kernel sends it SIGKILL when the parent dies (``PR_SET_PDEATHSIG``), and a watchdog thread checks
the parent pid too (covers a parent that died before the signal was armed).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time

import uvicorn

from nanoserve.engines import load_engine_class
from nanoserve.engines.base import EngineSpec
from nanoserve.observability.tracing import WORKER_ENDPOINT_ENV, create_tracing
from nanoserve.wire.headers import WORKER_SECRET_ENV
from nanoserve.worker.app import create_worker_app
from nanoserve.worker.secret import RequireSecret

log = logging.getLogger("nanoserve.worker")
PR_SET_PDEATHSIG = 1
# Longer than the gateway keeps idle connections (wire/client.py KEEPALIVE_SECONDS), so the
# gateway always closes them first (not imported: the worker does not load aiohttp for it).
WORKER_KEEPALIVE_SECONDS = 75.0


def die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watchdog alone
        pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watchdog() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watchdog, name="parent-watchdog", daemon=True).start()


def limit_threads(threads: int) -> None:
    """Keep BLAS/OpenMP/torch pools at the configured size (2 cores must not be oversubscribed)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def run_worker(
    engine_name: str,
    spec: EngineSpec,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    fd: int | None = None,
    parent_pid: int | None = None,
    log_level: str = "info",
    tool_format: str = "hermes",
) -> None:
    if parent_pid is not None:
        die_with_parent(parent_pid)
    secret = os.environ.pop(WORKER_SECRET_ENV, None)  # not inherited by anything the engine starts
    limit_threads(spec.threads)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = load_engine_class(engine_name)(spec)
    tracing = create_tracing(
        os.environ.get(WORKER_ENDPOINT_ENV), "nanoserve-worker", **{"nanoserve.model": spec.name}
    )
    app = create_worker_app(engine, spec.name, tracing=tracing, tool_format=tool_format)
    config = uvicorn.Config(
        RequireSecret(app, secret) if secret else app,
        host=host,
        port=port,
        fd=fd,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=WORKER_KEEPALIVE_SECONDS,  # longer than the gateway's pool keeps them
        lifespan="on",
    )
    uvicorn.Server(config).run()
