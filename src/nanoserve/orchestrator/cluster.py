"""The Ray cluster the gateway places workers on (``cluster:`` in the config, docs/cluster.md).

The gateway is a Ray driver (``ray.init(address)``); it reads Ray's node table, and each node is
a set of devices to the memory planner: ``ram@<node>`` (and ``gpuN@<node>``), where ``<node>`` is
the first 12 hex digits of Ray's node id. Capacity is what the node declares to Ray (its
``memory`` resource; its GPUs' totals as its probe reads them), so nodes simulated on one machine
differ the way real ones do. The planner places, evicts and scales per node with the same code as
on one machine (``devices.place`` over the nodes that offer what the model needs: threads as
CPUs, GPUs, its custom resources). What a node really has in use is measured by a probe actor on
it (``Probe``), for ``/models/status``.

The node table is read every second: a node that joins adds its devices; one that leaves takes
them away, and the replicas on it are failed (their streams end with an error event) and started
again elsewhere by their owners where there is room.

Only imported with a ``cluster`` section (``nanoserve[ray]``): without one nothing imports Ray.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil
import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import ConfigError, EngineError, Unavailable
from nanoserve.orchestrator.devices import node_of, on_node, reserves
from nanoserve.orchestrator.handles.ray import RayWorker, ray_result
from nanoserve.orchestrator.memory import RAM, DeviceMemory, Nvml, load_nvml
from nanoserve.orchestrator.planner import MIB
from nanoserve.orchestrator.status import device_status

log = logging.getLogger("nanoserve.cluster")

NODE_NAME_LENGTH = 12
WATCH_SECONDS = 1.0
PROBE_TIMEOUT = 5.0
LOOPBACK = ("127.0.0.1", "localhost")


@dataclass
class Node:
    id: str  # Ray's node id (hex)
    address: str
    resources: dict[str, float]
    alive: bool = True
    gpus: list[DeviceMemory] = field(default_factory=list)  # as its probe last read them

    @property
    def name(self) -> str:
        return self.id[:NODE_NAME_LENGTH]

    @property
    def memory(self) -> int:
        return int(self.resources.get("memory", 0))

    def offers(self, config: ModelConfig, held: Mapping[str, float] | None = None) -> bool:
        """Whether the node has what one replica of ``config`` reserves, beyond ``held``."""
        held = held or {}
        return all(self.resources.get(k, 0.0) - held.get(k, 0.0) >= v for k, v in reserves(config).items())


@ray.remote(num_cpus=0, max_restarts=0)
class Probe:
    """Measures its node: RAM in use (the machine's), and the GPUs as NVML reads them."""

    def measure(self) -> dict[str, Any]:
        vm = psutil.virtual_memory()
        gpu = Nvml(load_nvml())
        try:
            gpus = [(d.name, d.total, d.used, d.free, d.label) for d in gpu.devices()]
        finally:
            gpu.close()
        return {"total": vm.total, "used": vm.total - vm.available, "gpus": gpus}


class RayCluster:
    def __init__(self, settings: Settings):
        assert settings.cluster is not None
        self.settings = settings
        self.config = settings.cluster
        self.nodes: dict[str, Node] = {}  # by name, alive or gone
        self.reservations: dict[str, int] = {}  # model id -> RAM bytes Ray reserves per replica
        self._probes: dict[str, Any] = {}
        self._measured: dict[str, dict[str, Any]] = {}

    # -- connection and the node table -----------------------------------------------------
    def connect(self) -> None:
        """Join the cluster as a driver (blocking)."""
        address = self.config.address
        extra: dict[str, Any] = {}
        if address.rpartition(":")[0] in LOOPBACK:  # a local cluster: stay on loopback
            extra["_node_ip_address"] = "127.0.0.1"
        # ray.init makes SIGTERM exit the process at once: the gateway's graceful shutdown (its
        # server's handlers) is put back after it
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            ray.init(
                address=address,
                namespace=self.config.namespace,
                log_to_driver=False,
                logging_level=logging.WARNING,
                **extra,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cluster.address {address!r}: cannot join the Ray cluster: {exc}") from exc
        finally:
            if threading.current_thread() is threading.main_thread():
                for sig, handler in handlers.items():
                    if handler is not None:
                        signal.signal(sig, handler)
        self.refresh()
        log.info("joined the Ray cluster at %s: %d node(s)", address, len(self.alive()))

    def refresh(self) -> tuple[list[Node], list[Node]]:
        """Read Ray's node table (blocking); the nodes that joined and those that left since."""
        joined: list[Node] = []
        left: list[Node] = []
        for entry in ray.nodes():
            node_id = entry["NodeID"]
            name = node_id[:NODE_NAME_LENGTH]
            alive = bool(entry["Alive"])
            known = self.nodes.get(name)
            if known is None:
                if not alive:
                    continue
                known = self.nodes[name] = Node(
                    node_id, entry["NodeManagerAddress"], dict(entry["Resources"])
                )
                joined.append(known)
            elif known.alive and not alive:
                known.alive = False
                left.append(known)
                self._probes.pop(name, None)
                self._measured.pop(name, None)
        for node in joined:
            log.info("node %s (%s) joined: %s", node.name, node.address, node.resources)
        for node in left:
            log.warning("node %s (%s) left the cluster", node.name, node.address)
        return joined, left

    async def watch(self, on_change: Callable[[list[Node], list[Node]], Awaitable[None]]) -> None:
        """Read the node table every second; ``on_change(joined, left)`` when it changed."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                joined, left = await asyncio.to_thread(self.refresh)
                if joined or left:
                    await self.measure()  # the new nodes' GPUs
                    await on_change(joined, left)
            except Exception:  # the loop must survive anything one round does
                log.exception("reading the Ray node table failed")

    def alive(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.alive]

    # -- what the planner sees -------------------------------------------------------------
    def budgets(self) -> dict[str, int]:
        """Bytes per device of every live node: the RAM it declares to Ray, its GPUs' totals
        minus the configured GPU margin."""
        margin = self.settings.memory.gpu_margin_mib * MIB
        result: dict[str, int] = {}
        for node in self.alive():
            result[on_node(RAM, node.name)] = node.memory
            for gpu in node.gpus:
                result[on_node(gpu.name, node.name)] = max(0, gpu.total - margin)
        return result

    def fitting(self, config: ModelConfig, held: Mapping[str, Mapping[str, float]]) -> list[Node]:
        """The live nodes with what one replica of ``config`` reserves, beyond what the other
        replicas placed there hold (``held``: resources by node name). Raises ``Unavailable``
        naming why when there is none."""
        offering = [n for n in self.alive() if n.offers(config)]
        fitting = [n for n in offering if n.offers(config, held.get(n.name))]
        if fitting:
            return fitting
        asks = ", ".join(f"{k} {v:g}" for k, v in reserves(config).items())
        if not offering:
            raise Unavailable(
                f"no node of the cluster offers what a replica of '{config.id}' reserves ({asks}); "
                f"{len(self.alive())} node(s) are up",
                retry_after=5,
            )
        names = ", ".join(n.name for n in offering)
        raise Unavailable(
            f"the nodes that could run '{config.id}' ({names}) have their resources ({asks}) "
            "reserved by other replicas right now; retry later",
            retry_after=5,
        )

    def worker(self, config: ModelConfig, device: str | None) -> RayWorker:
        """An unstarted handle for a replica of ``config`` placed on ``device`` ("ram@<node>")."""
        name = node_of(device)
        node = self.nodes.get(name or "")
        if node is None or not node.alive:
            raise EngineError(f"model '{config.id}': node {name} left the cluster before its worker started")
        return RayWorker(
            config,
            self.settings,
            node_id=node.id,
            node=node.name,
            memory=self.reservations.get(config.id, 0),
        )

    # -- measured use, status ----------------------------------------------------------------
    async def measure(self) -> None:
        """Ask every live node's probe what it has in use (a probe is started on first use)."""
        nodes = self.alive()
        for node in nodes:
            if node.name not in self._probes:
                strategy = NodeAffinitySchedulingStrategy(node.id, soft=False)
                self._probes[node.name] = Probe.options(scheduling_strategy=strategy).remote()
        answers = await asyncio.gather(
            *(
                asyncio.wait_for(ray_result(self._probes[n.name].measure.remote()), PROBE_TIMEOUT)
                for n in nodes
            ),
            return_exceptions=True,
        )
        for node, answer in zip(nodes, answers, strict=True):
            if isinstance(answer, BaseException):
                log.debug("node %s: probe failed: %s", node.name, answer)
                continue
            self._measured[node.name] = answer
            node.gpus = [DeviceMemory(*gpu) for gpu in answer["gpus"]]

    async def status(self, budgets: Mapping[str, int], held: Mapping[str, int]) -> list[dict[str, Any]]:
        """``nodes`` of ``/models/status``: each live node, its devices (declared capacity, the
        planner's budget and count, what its probe measured) and its Ray resources."""
        try:
            await self.measure()
        except RayError as exc:
            log.warning("measuring the nodes failed: %s", exc)
        result = []
        for node in self.alive():
            measured = self._measured.get(node.name, {})
            declared = node.memory
            used = int(measured.get("used", 0))
            ram = DeviceMemory(RAM, declared, used, max(0, declared - used), "declared to Ray")
            devices = [ram, *node.gpus]
            result.append(
                {
                    "id": node.name,
                    "ray_node_id": node.id,
                    "address": node.address,
                    "resources": node.resources,
                    "machine_ram_mib": int(measured.get("total", 0)) // MIB,
                    "devices": [
                        device_status(
                            d,
                            budgets.get(on_node(d.name, node.name), 0),
                            held.get(on_node(d.name, node.name), 0),
                        )
                        for d in devices
                    ],
                }
            )
        return result

    def close(self) -> None:
        """Leave the cluster (the workers' actors are already stopped; the probes go with the driver)."""
        for probe in self._probes.values():
            try:
                ray.kill(probe)
            except (RayError, ValueError):
                pass
        self._probes.clear()
        if ray.is_initialized():
            ray.shutdown()
