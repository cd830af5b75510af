"""The orchestrator: which models exist, which are loaded, and leases on ready workers.

Built by ``create_app`` from the settings and started/stopped by the gateway's lifespan. Routes
call ``acquire(name)`` for a lease on a ready worker (loading the model on first use, within the
memory budget) and release it when their response ends. The admin API calls ``load``,
``unload``, ``plan`` (dry run) and ``status``.

Events: listeners added with ``add_listener`` are called as ``listener(event, instance, details)``
for every state change (event = the new state), and for ``loaded`` (``seconds``, ``pid``),
``unloaded`` (``reason``: idle, memory, manual, crash, shutdown; ``forced``), ``rejected``
(``kind``: queue_full, no_room, never_fits) and ``heartbeat_missed`` (``misses``). The
supervisor (``supervisor.py``: heartbeats, restarts, retries, unload-after-request) hears them
first. Counters: ``instance.stats`` per model and
``memory_stats`` overall.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import Conflict, InsufficientMemory, QueueFull, Unavailable
from nanoserve.orchestrator.arbiter import MemoryArbiter, MemoryStats
from nanoserve.orchestrator.baseline import measure_baseline
from nanoserve.orchestrator.devices import evict_on, gpu_provider, node_of, on_node, place, reserves
from nanoserve.orchestrator.estimate import BaselineProbe, Estimator
from nanoserve.orchestrator.footprints import FootprintStore
from nanoserve.orchestrator.handles import (
    Translator,
    WorkerHandle,
    create_handle,
    on_cluster,
    translator_for,
)
from nanoserve.orchestrator.instance import HOLDS_MEMORY, Lease, ModelInstance, ModelView, Reason, State
from nanoserve.orchestrator.memory import DeviceMemory, Nvml, budgets, load_nvml, ram_device
from nanoserve.orchestrator.meter import Meter
from nanoserve.orchestrator.planner import Plan
from nanoserve.orchestrator.registry import Registry
from nanoserve.orchestrator.reload import ConfigChanges, compare
from nanoserve.orchestrator.replicas import ReplicaGroup
from nanoserve.orchestrator.router import NO_AFFINITY, Affinity
from nanoserve.orchestrator.scaling import GroupLoad, replica_to_remove
from nanoserve.orchestrator.scheduler import QUEUE_RETRY_AFTER, QueueState, admit
from nanoserve.orchestrator.status import (
    counters,
    device_status,
    group_status,
    loaded_models,
    memory_summary,
)
from nanoserve.orchestrator.supervisor import Supervisor

if TYPE_CHECKING:
    from nanoserve.orchestrator.cluster import Node, RayCluster

log = logging.getLogger("nanoserve.orchestrator")

EventListener = Callable[[str, ModelInstance, dict[str, Any]], None]
_SYSTEM_NVML = object()


class Orchestrator:
    def __init__(
        self,
        settings: Settings,
        *,
        nvml: Any = _SYSTEM_NVML,
        baseline_probe: BaselineProbe = measure_baseline,
    ):
        """``nvml``: an NVML module (default: ``pynvml`` if installed; None: no GPU support)."""
        self.settings = settings
        self.registry = Registry(settings.models)
        self._listeners: list[EventListener] = []
        self.gpu = gpu_provider(settings, Nvml(load_nvml() if nvml is _SYSTEM_NVML else nvml))
        self.store = FootprintStore(settings.data_dir)
        self.estimator = Estimator(
            settings.data_dir, self.store, baseline_probe, gpus=len(self.gpu.devices())
        )
        self.meter = Meter(self.store, self.gpu)
        # validates each backend's options up front: a bad config fails at start, naming the model
        self.translators: dict[str, Translator] = {model.id: translator_for(model) for model in self.registry}
        # every instance of every model, by instance key (a model's first replica: its id)
        self.instances: dict[str, ModelInstance] = {}
        self.groups: dict[str, ReplicaGroup] = {
            model.id: ReplicaGroup(model, partial(self._new_instance, model)) for model in self.registry
        }
        self.memory = MemoryArbiter(
            self.instances,
            budgets(self.devices(), settings.memory),
            self.estimator,
            self.store,
            settings.memory,
        )
        self.cluster: RayCluster | None = None  # workers on a Ray cluster (imported only then)
        self._cluster_watch: asyncio.Task[None] | None = None
        if settings.cluster is not None:
            from nanoserve.orchestrator.cluster import RayCluster

            self.cluster = RayCluster(settings)
        self.accepting = True
        self._retired = itertools.count(1)
        checks = settings.observability
        self.supervisor = Supervisor(
            self,
            interval=checks.heartbeat_interval,
            timeout=checks.heartbeat_timeout,
            failures=checks.heartbeat_failures,
        )

    def _new_instance(self, config: ModelConfig, replica: int) -> ModelInstance:
        instance = ModelInstance(
            config, self, start_timeout=self.settings.worker_start_timeout, replica=replica
        )
        self.instances[instance.key] = instance
        return instance

    @property
    def memory_stats(self) -> MemoryStats:
        return self.memory.stats

    def add_listener(self, listener: EventListener) -> None:
        """Called on every event of every instance (metrics, logs); must not block."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Join the cluster if there is one, start supervising (heartbeats); called by the
        gateway's lifespan."""
        if self.cluster is not None:
            self.cluster.connect()
            self.memory.budgets.update(self.cluster.budgets())
            self._cluster_watch = asyncio.create_task(self.cluster.watch(self._nodes_changed), name="nodes")
        self.supervisor.start()

    async def _nodes_changed(self, joined: list[Node], left: list[Node]) -> None:
        """Nodes joined or left the cluster: their devices come or go from the budgets; the
        replicas on a node that left are failed (their owners start them again elsewhere)."""
        assert self.cluster is not None
        budgets = self.cluster.budgets()
        for device in [d for d in self.memory.budgets if "@" in d and d not in budgets]:
            del self.memory.budgets[device]
        self.memory.budgets.update(budgets)
        gone = {node.name: node for node in left}
        for instance in self.instances.values():
            node = gone.get(node_of(instance.device) or "")
            if node is not None and instance.worker is not None and instance.worker.alive:
                instance.worker_unresponsive(
                    instance.worker, f"node {node.name} ({node.address}) left the cluster"
                )
        self.memory.changed()

    def emit(self, event: str, instance: ModelInstance, details: dict[str, Any]) -> None:
        """Tell the listeners (the supervisor first)."""
        self.supervisor.on_event(event, instance, details)
        for listener in self._listeners:
            try:
                listener(event, instance, details)
            except Exception:
                log.exception("event listener failed on %s", event)

    # -- Host: what instances ask of the orchestrator ----------------------------------
    def event(self, event: str, instance: ModelInstance, details: dict[str, object]) -> None:
        self.memory.changed()
        if event != "idle":
            self.emit(event, instance, details)

    async def launch(self, config: ModelConfig, device: str | None = None) -> WorkerHandle:
        handle = create_handle(config, self.settings, device, self.cluster)
        await handle.start()
        return handle

    async def reserve(self, instance: ModelInstance, on_reserved: Callable[[], None]) -> None:
        await self._place(instance)
        await self.memory.reserve(instance, on_reserved)

    async def _place(self, instance: ModelInstance) -> None:
        """Choose the node for an instance on the cluster, and the GPU for one whose footprint has a
        GPU part: among those with room, the one with the fewest replicas of its model
        (``devices.place``), else one that could hold it once emptied (``devices.evict_on``: the
        planner evicts there), else the one with the most free (the planner says it never fits)."""
        instance.device = None
        config = instance.config
        footprint = await self.memory.need(instance)
        if self.cluster is not None and on_cluster(config, self.settings):
            joined, left = await asyncio.to_thread(self.cluster.refresh)  # a node may have just left
            if joined or left:
                await self._nodes_changed(joined, left)
            held: dict[str, Counter[str]] = {}  # what the other replicas placed on each node reserve
            for other in self.instances.values():
                if other is not instance and (node := node_of(other.device)):
                    held.setdefault(node, Counter()).update(reserves(other.config))
            nodes = self.cluster.fitting(config, held)
            ram = footprint.get("ram", 0)
            self.cluster.reservations[config.id] = ram
            instance.device = self._choose(instance, ram, [on_node("ram", node.name) for node in nodes])
            return
        on_gpu = sum(size for device, size in footprint.items() if device.startswith("gpu"))
        if on_gpu:
            gpus = [d for d in self.memory.budgets if d.startswith("gpu") and "@" not in d]
            instance.device = self._choose(instance, on_gpu, gpus)

    def _choose(self, instance: ModelInstance, need: int, devices: list[str]) -> str | None:
        used = self.memory.snapshot().used()
        free = {d: self.memory.budgets.get(d, 0) - used.get(d, 0) for d in devices}
        others = [r for r in self.groups[instance.id].replicas if r is not instance and r.device]
        for other in others:  # placed, not yet holding memory (started at the same time)
            if other.state not in HOLDS_MEMORY and other.device in free:
                free[other.device] -= need
        siblings = Counter(r.device for r in others)
        return (
            place(need, free, siblings)
            or evict_on(need, free, self.memory.budgets)
            or min(free, key=lambda d: (-free[d], d), default=None)
        )

    async def measure(self, instance: ModelInstance, worker: WorkerHandle, *, after_load: bool) -> None:
        measured = await self.meter.measure(
            instance, worker, after_load=after_load, warm_up=self.settings.memory.warm_up
        )
        if measured is not None:
            self.memory.changed()
            self.emit("measured", instance, {"bytes": measured, "after_load": after_load})

    async def confirm_released(self, instance: ModelInstance, worker: WorkerHandle, pids: list[int]) -> None:
        await self.meter.confirm_released(instance, worker, pids)

    # -- routes --------------------------------------------------------------------------
    def group(self, name: str) -> ReplicaGroup:
        return self.groups[self.registry.get(name).id]

    def instance(self, name: str) -> ModelInstance:
        """The model's first replica (the model itself, for a single-replica model)."""
        return self.group(name).first

    async def acquire(
        self,
        name: str,
        *,
        keep_alive: float | None = None,
        priority: int | None = None,
        affinity: Affinity = NO_AFFINITY,
    ) -> Lease:
        """A lease on a ready backend of model ``name`` (loads it if needed).

        ``keep_alive`` (seconds, -1 forever, 0 unload after this request; None: the model's
        default) and ``priority`` (None: unchanged) are the request's lifecycle controls;
        ``affinity`` says which replica would serve it best (``router.py``).
        Raises ``QueueFull`` (429), ``Unavailable`` (503: no room right now) or
        ``InsufficientMemory`` (507: the model can never fit).
        """
        if not self.accepting:
            raise Unavailable("the server is shutting down", retry_after=5)
        group = self.group(name)
        config = group.config
        if not admit(QueueState(group.waiting, group.in_flight, group.slots(), config.max_queue)):
            instance = group.first
            self._rejected(instance, "queue_full")
            raise QueueFull(
                f"model '{group.id}' is at its limit: {group.in_flight} request(s) in flight and "
                f"{group.queued()} queued ({group.slots()} slots + {config.max_queue} queued allowed); "
                "retry later",
                retry_after=QUEUE_RETRY_AFTER,
            )
        instance = group.first
        try:
            instance = await self._route(group, affinity)
            instance.apply_controls(keep_alive=keep_alive, priority=priority)
            worker = await instance.acquire()
        except InsufficientMemory:
            self._rejected(instance, "never_fits")
            raise
        except Unavailable:
            if self.accepting:
                self._rejected(instance, "no_room")
            raise
        return Lease(instance, worker)

    async def _route(self, group: ReplicaGroup, affinity: Affinity) -> ModelInstance:
        """The replica for a request. A model that may have several holds requests beyond its
        ready replicas' slots here until a slot frees or another replica is ready."""
        if not group.spread:
            return group.choose(affinity) or group.to_start()
        group.held += 1
        try:
            while True:
                group.changed.clear()
                instance = group.choose(affinity, free_slot=True)
                if instance is not None:
                    return instance
                if not group.ready():  # nothing ready: start one, then route among the ready
                    await group.to_start().ensure_ready()
                    continue
                await group.changed.wait()
        finally:
            group.held -= 1

    def _rejected(self, instance: ModelInstance, kind: str) -> None:
        self.memory.stats.rejections[kind] += 1
        self.emit("rejected", instance, {"kind": kind})

    async def load(
        self,
        name: str,
        *,
        priority: int | None = None,
        keep_alive: float | None = None,
        pinned: bool | None = None,
        replicas: int | None = None,
    ) -> ModelInstance:
        """Load the model (``replicas``: that many, as ``scale`` does)."""
        group = self.group(name)
        for instance in group.replicas:
            instance.apply_controls(keep_alive=keep_alive, priority=priority, pinned=pinned)
        if replicas is not None:
            await self.scale(name, replicas)
        await group.first.ensure_ready()
        await group.first.measured_after_load()
        return group.first

    async def scale(self, name: str, replicas: int | None) -> ReplicaGroup:
        """Run exactly ``replicas`` replicas of the model (None: back to automatic scaling within
        its ``replicas.min``/``max``); returns once the new ones are ready and the removed ones
        have drained."""
        group = self.group(name)
        group.target = replicas
        if replicas is not None:
            await self.rescale(group, replicas)
        return group

    async def rescale(self, group: ReplicaGroup, want: int, *, load: GroupLoad | None = None) -> None:
        """Start or stop replicas until ``want`` are live: new ones only where memory allows without
        evicting a model that has requests in flight; removed ones drain their requests first."""
        async with group.lock:
            await self._rescale(group, want, load)

    async def _rescale(self, group: ReplicaGroup, want: int, load: GroupLoad | None) -> None:
        live = group.live()
        group.last_scaled = time.monotonic()
        if want > len(live):
            idle = [
                r
                for r in group.replicas
                if r.state in (State.STOPPED, State.FAILED) and not r.backoff_remaining()
            ]
            missing = want - len(live)
            starts = idle[:missing] + [group.replica(len(group.replicas)) for _ in range(missing - len(idle))]
            self.emit("scaled", group.first, {"replicas": want, "from": len(live)})
            results = await asyncio.gather(*(self._start_replica(r) for r in starts), return_exceptions=True)
            for instance, result in zip(starts, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("%s: replica %d not started: %s", group.id, instance.replica, result)
        elif want < len(live):
            extras = sorted((r for r in live if r.replica > 0), key=lambda r: (r.in_flight, -r.replica))
            if load is not None and (index := replica_to_remove(load)) is not None:
                extras.sort(key=lambda r: r.replica != index)
            stopping = extras[: len(live) - want]
            if want == 0:
                stopping = live
            self.emit("scaled", group.first, {"replicas": want, "from": len(live)})
            for instance in stopping:
                group.prefixes.forget(instance.replica)
            await asyncio.gather(*(r.stop(Reason.SCALE_DOWN) for r in stopping), return_exceptions=True)

    async def _start_replica(self, instance: ModelInstance) -> None:
        """Start one more replica where it fits beside the model's others and every busy model
        (idle other models may be evicted for it, as for any load)."""
        await self._place(instance)
        plan = await self.memory.plan(instance)
        kept = {r.id for r in self.memory.snapshot().residents if r.in_flight}
        kept |= {r.key for r in self.groups[instance.id].replicas if r is not instance}
        if kept.intersection(plan.evict) or not plan.fits and not plan.evict:
            raise Unavailable(
                f"no room for another replica of '{instance.id}' beside its others and the busy models"
            )
        await instance.ensure_ready()
        await instance.measured_after_load()

    async def plan(self, name: str) -> Plan:
        """Dry run of loading ``name``: what would be evicted and how much would be left."""
        return await self.memory.plan(self.instance(name))

    async def unload(self, name: str, *, force: bool = False, reason: str = Reason.MANUAL) -> ModelInstance:
        """Unload every replica of ``name``. Without ``force``, a model with requests in flight is
        a 409; with it, they are cut off (streams end with an error event)."""
        group = self.group(name)
        if not force and group.in_flight:
            raise Conflict(
                f"model '{group.id}' has {group.in_flight} request(s) in flight; "
                "retry when they finish or unload with force"
            )
        group.target = None
        await asyncio.gather(*(r.stop(reason, force=force) for r in reversed(group.replicas)))
        return group.first

    # -- config reload ------------------------------------------------------------------------
    def reload(self, settings: Settings) -> ConfigChanges:
        """Apply a new config's models and limits without a restart (``reload.py`` says what
        changes how). Added models load on their first request; removed and replaced models'
        backends finish the requests they hold, then stop. A new config that does not validate
        raises before anything changes."""
        translators = {model.id: translator_for(model) for model in settings.models}
        registry = Registry(settings.models)
        changes = compare(self.settings, settings)
        for model in changes.updated:
            config = registry.get(model)
            group = self.groups[model]
            group.config = config
            for instance in group.replicas:
                instance.reconfigure(config)
        for model in changes.removed + changes.replaced:
            for instance in self.groups.pop(model).replicas:
                self._retire(instance)
        for model in changes.added + changes.replaced:
            config = registry.get(model)
            self.groups[model] = ReplicaGroup(config, partial(self._new_instance, config))
        self.registry, self.translators = registry, translators
        self.settings.models = settings.models  # one settings object, shared with the routes
        self.settings.limits = self.supervisor.admission.limits = settings.limits
        log.info("config reloaded: %s", changes.as_dict())
        return changes

    def _retire(self, instance: ModelInstance) -> None:
        """Take an instance of a removed or replaced model out of service: its requests in flight
        finish, then it stops. Until then it holds its memory under a key of its own."""
        del self.instances[instance.key]
        instance.retired = True
        if instance.state in HOLDS_MEMORY:  # counted by the planner until it has stopped
            instance.key = f"{instance.key}~retired{next(self._retired)}"
            self.instances[instance.key] = instance

        async def stop() -> None:
            try:
                await instance.stop(Reason.RELOAD)
                await instance.close()
            finally:
                if self.instances.get(instance.key) is instance:
                    del self.instances[instance.key]
                self.memory.changed()

        self.supervisor.spawn(stop(), f"retire:{instance.key}")

    # -- status ----------------------------------------------------------------------------
    def devices(self) -> list[DeviceMemory]:
        """RAM and each GPU as the machine reports them now (blocking: call in a thread)."""
        return [ram_device(), *self.gpu.devices()]

    async def status(self) -> dict[str, Any]:
        """``GET /models/status``: devices and models, sizes in MiB."""
        devices = await asyncio.to_thread(self.devices)
        firsts = [group.first for group in self.groups.values()]
        results = await asyncio.gather(*(self.memory.need(i) for i in firsts), return_exceptions=True)
        for instance, result in zip(firsts, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("%s: no memory estimate: %s", instance.id, result)
        held = self.memory.snapshot().used()
        stats = self.memory.stats
        nodes = await self.cluster.status(self.memory.budgets, held) if self.cluster is not None else None
        body = {
            "devices": [
                device_status(d, self.memory.budgets.get(d.name, 0), held.get(d.name, 0)) for d in devices
            ],
            **({"nodes": nodes} if nodes is not None else {}),
            "models": [group_status(group) for group in self.groups.values()],
            "counters": counters(stats.evictions, stats.drains, stats.rejections),
        }
        return {**body, **memory_summary(body["devices"]), "loaded_models": loaded_models(body["models"])}

    def views(self) -> list[ModelView]:
        """A read-only snapshot of every model, for status endpoints (``/models/status``, ``/api/ps``)."""
        return [group.view() for group in self.groups.values()]

    async def shutdown(self) -> None:
        self.accepting = False
        await self.supervisor.stop()  # no heartbeats or restarts while the workers stop
        self.memory.close()
        await asyncio.gather(*(i.close() for i in list(self.instances.values())), return_exceptions=True)
        self.gpu.close()
        if self.cluster is not None:
            if self._cluster_watch is not None:
                self._cluster_watch.cancel()
                await asyncio.gather(self._cluster_watch, return_exceptions=True)
            await asyncio.to_thread(self.cluster.close)
