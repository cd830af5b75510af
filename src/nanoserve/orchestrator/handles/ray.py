"""``RayWorker``: our own worker, run by a Ray actor on a cluster node (docs/cluster.md).

The actor (``WorkerActor``) hosts a ``LocalWorker`` on its node: the same ``nanoserve worker``
process with the same command line, except that it listens on the node's address and answers
only requests carrying this instance's secret (``wire/headers.py``). The gateway talks to that
address over HTTP exactly as to a local worker; Ray only places the actor (by CPUs, GPUs, a
``memory`` reservation from the planner's estimate and the model's custom resources, pinned to the
node the planner chose) and tells us when it dies.

Actors are created with ``max_restarts=0``: the instance's owner is the one restarter, with its
back-off. The worker watches the actor process (``--parent-pid``), so it goes when the actor does,
and the actor is owned by the gateway's Ray driver, so it goes when the gateway does.

Only imported when the config has a ``cluster`` section (``nanoserve[ray]``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from typing import Any

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import EngineError
from nanoserve.orchestrator.handles.base import get_ok, poll_health
from nanoserve.orchestrator.handles.local import LocalWorker, worker_health
from nanoserve.orchestrator.memory import Nvml, load_nvml
from nanoserve.wire.client import WorkerClient
from nanoserve.wire.headers import WORKER_SECRET_HEADER

log = logging.getLogger("nanoserve.orchestrator")

CALL_TIMEOUT = 10.0  # seconds for a call to the actor (memory, log tail)
ACTOR_PREFIX = "nanoserve:"  # actor names: nanoserve:<model>:<8 hex>


@ray.remote
class WorkerActor:
    """One ``LocalWorker`` on this actor's node (async actor: ``wait`` blocks while others run)."""

    def __init__(self, config: ModelConfig, settings: Settings, secret: str):
        host = ray.util.get_node_ip_address()
        self.worker = LocalWorker(config, settings, host=host, secret=secret)
        self.gpu = Nvml(load_nvml())
        self.started = asyncio.Event()

    async def start(self) -> tuple[str, int | None]:
        try:
            await self.worker.start()
        finally:
            self.started.set()
        return self.worker.address, self.worker.pid

    async def wait(self) -> tuple[str, str]:
        """Returns once the worker has exited: how, and its log's tail."""
        await self.started.wait()
        await self.worker.wait_exited()
        return self.worker.exit_reason(), self.worker.log_tail()

    async def stop(self, timeout: float, kill: bool) -> None:
        await self.worker.stop(timeout, kill=kill)

    async def memory(self) -> dict[str, int] | None:
        return await asyncio.to_thread(self.worker.memory, self.gpu)

    async def reset_peak(self) -> None:
        await asyncio.to_thread(self.worker.reset_peak)

    async def log_tail(self) -> str:
        return self.worker.log_tail()


def actor_options(config: ModelConfig, node_id: str, memory: int) -> dict[str, Any]:
    """How Ray places a model's actor: pinned to ``node_id``, reserving its threads, GPUs, custom
    resources and ``memory`` bytes; never restarted by Ray."""
    options: dict[str, Any] = {
        "num_cpus": config.effective_threads,
        "num_gpus": config.placement.num_gpus,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False),
        "max_restarts": 0,
        "max_task_retries": 0,
        "name": f"{ACTOR_PREFIX}{config.id}:{uuid.uuid4().hex[:8]}",
    }
    if config.placement.resources:
        options["resources"] = dict(config.placement.resources)
    if memory > 0:
        options["memory"] = memory
    return options


async def ray_result(ref: ray.ObjectRef) -> Any:
    """The value of a Ray call, awaited on this event loop (raises what the call raised)."""
    return await asyncio.wrap_future(ref.future())


class RayWorker:
    kind = "ray"
    speaks_nanoserve = True
    metrics_path = "/metrics"
    slots: asyncio.Semaphore | None = None

    def __init__(
        self,
        config: ModelConfig,
        settings: Settings,
        *,
        node_id: str,
        node: str,
        memory: int,
    ):
        """``node_id``: the Ray node to run on (``node``: its short name, for messages);
        ``memory``: the bytes Ray reserves there (the planner's footprint)."""
        self.model = config.id
        self.config = config
        self.settings = settings
        self.node_id = node_id
        self.node = node
        self.options = actor_options(config, node_id, memory)
        self._secret = secrets.token_urlsafe(32)
        self.client = WorkerClient("http://unstarted", headers={WORKER_SECRET_HEADER: self._secret})
        self.started_at = time.time()
        self.actor: Any = None
        self._address = ""
        self._pid: int | None = None
        self._started: asyncio.Future[tuple[str, int | None]] | None = None
        self._exit: asyncio.Task[None] | None = None
        self._reason = ""
        self._tail = ""

    @property
    def address(self) -> str:
        return self._address

    @property
    def pid(self) -> int | None:
        """The worker's pid on its node (not this machine's)."""
        return self._pid

    @property
    def alive(self) -> bool:
        return self._exit is not None and not self._exit.done()

    async def start(self) -> None:
        self.actor = WorkerActor.options(**self.options).remote(self.config, self.settings, self._secret)
        self._started = asyncio.ensure_future(ray_result(self.actor.start.remote()))
        self._exit = asyncio.create_task(self._watch(), name=f"ray-watch:{self.model}")
        self.started_at = time.time()
        log.info("started a Ray actor %s for %s on node %s", self.options["name"], self.model, self.node)

    async def _watch(self) -> None:
        try:
            self._reason, self._tail = await ray_result(self.actor.wait.remote())
            self._reason = f"{self._reason} on node {self.node}"
        except RayError as exc:
            self._reason = f"the Ray actor of '{self.model}' on node {self.node} died ({type(exc).__name__})"
        finally:
            self._kill_actor()

    async def wait_healthy(self, timeout: float) -> None:
        assert self._started is not None, "start() first"
        try:
            self._address, self._pid = await asyncio.wait_for(asyncio.shield(self._started), timeout)
        except TimeoutError:
            raise EngineError(
                f"the Ray actor of '{self.model}' was not started on node {self.node} within "
                f"{timeout:.0f}s (does the node still offer {self._wanted()}?)"
            ) from None
        except RayError as exc:
            raise EngineError(f"the Ray actor of '{self.model}' failed on node {self.node}: {exc}") from None
        self.client = WorkerClient(self._address, headers={WORKER_SECRET_HEADER: self._secret})
        log.info("%s: worker on node %s at %s", self.model, self.node, self._address)
        await poll_health(self, worker_health(self), timeout)

    def _wanted(self) -> str:
        wanted = {"CPU": self.options["num_cpus"], "memory": self.options.get("memory", 0)}
        return ", ".join(f"{k} {v}" for k, v in {**wanted, **self.options.get("resources", {})}.items())

    async def healthy(self, timeout: float) -> bool:
        return await get_ok(self.client, "/health", timeout)

    async def stop(self, timeout: float | None = None, *, kill: bool = False) -> None:
        if self.actor is None:
            return
        grace = 10.0 if timeout is None else timeout
        if self.alive and not kill:
            await self.client.close()
            try:
                await asyncio.wait_for(ray_result(self.actor.stop.remote(grace, False)), grace + 5)
            except (RayError, TimeoutError) as exc:
                log.warning("%s: the Ray actor did not stop cleanly: %s", self.model, exc)
        self._kill_actor()
        if self._exit is not None:
            await asyncio.gather(self._exit, return_exceptions=True)
        await self.client.close()

    def _kill_actor(self) -> None:
        if self.actor is None:
            return
        try:
            ray.kill(self.actor, no_restart=True)  # gives its resources back to the node
        except (RayError, ValueError):
            pass

    async def wait_exited(self) -> None:
        if self._exit is not None:
            await asyncio.shield(self._exit)

    def exit_reason(self) -> str:
        return self._reason or f"the Ray actor of '{self.model}' on node {self.node} ended"

    def memory(self, gpu: Nvml) -> dict[str, int] | None:
        """What the worker holds on its node, measured there as a local worker is here."""
        if not self.alive:
            return None
        try:
            return ray.get(self.actor.memory.remote(), timeout=CALL_TIMEOUT)  # type: ignore[no-any-return]
        except RayError as exc:
            log.debug("%s: no memory from node %s: %s", self.model, self.node, exc)
            return None

    def reset_peak(self) -> None:
        if self.alive:
            try:
                ray.get(self.actor.reset_peak.remote(), timeout=CALL_TIMEOUT)
            except RayError:
                pass

    def pids(self) -> list[int]:
        return []  # its processes are on another node: Ray's to reap

    def kill_all(self) -> None:
        self._kill_actor()

    def log_tail(self) -> str:
        if self._tail or not self.alive:
            return self._tail
        try:
            return ray.get(self.actor.log_tail.remote(), timeout=CALL_TIMEOUT)  # type: ignore[no-any-return]
        except RayError:
            return ""
