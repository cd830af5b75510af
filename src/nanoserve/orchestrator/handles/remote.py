"""``engine: remote``: an OpenAI-compatible URL someone else runs (a vLLM server, another
nanoserve, a team or cloud API).

Nothing to start or stop and no memory on this machine: "loading" is a health probe of
``GET <base_url>/models``, and "stopping" forgets the connection. The API key is read from the
environment variable the config names (``api_key_env``) when the handle starts; it is sent only
as the upstream's ``Authorization`` header and never appears in logs, errors or metrics (the
client's own ``Authorization`` is never forwarded). ``max_concurrent`` caps the requests sent at
once; the others wait in the gateway's queue for this model.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from nanoserve.config import ModelConfig
from nanoserve.errors import EngineError, WorkerUnavailable
from nanoserve.orchestrator.handles.base import get_ok
from nanoserve.orchestrator.handles.translate import parse_options
from nanoserve.orchestrator.memory import Nvml
from nanoserve.profiles.foreign import RemoteOptions
from nanoserve.wire.client import KEEPALIVE_SECONDS, WorkerClient, WorkerResponse

API_ROOT = "/v1"  # the gateway's paths start here; the base URL stands for it


def remote_options(config: ModelConfig) -> RemoteOptions:
    return parse_options(RemoteOptions, config)


class RemoteClient(WorkerClient):
    """A worker client for a base URL with a path (``/v1`` of ours maps onto it), a key, timeouts."""

    def __init__(self, options: RemoteOptions, api_key: str | None):
        parts = urlsplit(options.base_url)
        super().__init__(f"{parts.scheme}://{parts.netloc}")
        self.root = parts.path  # e.g. "/v1", "/api/openai/v1", ""
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=options.connect_timeout, sock_read=options.read_timeout
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(
                self.base_url, connector=connector, timeout=self._timeout, headers=self._auth
            )
        return self._session

    def path(self, path: str) -> str:
        if path.startswith(API_ROOT + "/"):
            path = path[len(API_ROOT) :]
        return self.root + path

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> WorkerResponse:
        return await super().post(self.path(path), body, headers)

    async def get_json(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        return await super().get_json(self.path(path), timeout)


class RemoteWorker:
    kind = "remote"
    speaks_nanoserve = False
    metrics_path = None  # someone else's metrics are not ours to merge
    pid = None

    def __init__(self, config: ModelConfig):
        self.options = remote_options(config)
        self.model = config.id
        self.started_at = 0.0
        self.client: WorkerClient = RemoteClient(self.options, None)
        self.slots = asyncio.Semaphore(self.options.max_concurrent) if self.options.max_concurrent else None
        self._ended = asyncio.Event()
        self._reason = ""

    @property
    def address(self) -> str:
        return self.options.base_url

    @property
    def alive(self) -> bool:
        return not self._ended.is_set()

    async def start(self) -> None:
        api_key = None
        if (name := self.options.api_key_env) is not None:
            api_key = os.environ.get(name)
            if not api_key:
                raise EngineError(
                    f"model '{self.model}': the environment variable {name} (options.api_key_env) is not set"
                )
        self.client = RemoteClient(self.options, api_key)
        self.started_at = time.time()

    async def wait_healthy(self, timeout: float) -> None:
        limit = min(timeout, self.options.connect_timeout)
        try:
            status, _ = await self.client.get_json(self.options.health_path, timeout=limit)
        except WorkerUnavailable:
            status = 0
        if status != 200:
            what = f"answered {status}" if status else "did not answer"
            raise WorkerUnavailable(
                f"model '{self.model}': the upstream {self.address} {what} on {self.options.health_path}",
                retry_after=max(1, round(self.options.connect_timeout)),
            )

    async def healthy(self, timeout: float) -> bool:
        return await get_ok(self.client, self.options.health_path, timeout)

    async def stop(self, timeout: float | None = None, *, kill: bool = False) -> None:
        self._end("stopped")
        await self.client.close()

    async def wait_exited(self) -> None:
        await self._ended.wait()

    def exit_reason(self) -> str:
        return f"the upstream {self.address} is {self._reason or 'unreachable'}"

    def kill_all(self) -> None:
        self._end("unreachable")

    def _end(self, reason: str) -> None:
        if not self._ended.is_set():
            self._reason = reason
            self._ended.set()

    def memory(self, gpu: Nvml) -> dict[str, int] | None:
        return {}  # nothing here

    def reset_peak(self) -> None:
        pass

    def pids(self) -> list[int]:
        return []

    def log_tail(self) -> str:
        return ""
