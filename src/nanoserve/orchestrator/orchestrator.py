"""The orchestrator: which models exist, which are loaded, and leases on ready workers.

Built by ``create_app`` from the settings and started/stopped by the gateway's lifespan. Routes
call ``acquire(name)`` for a lease on a ready worker (loading the model on first use) and
release it when their response ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import Unavailable
from nanoserve.orchestrator.instance import Lease, ModelInstance, ModelView
from nanoserve.orchestrator.process import WorkerProcess, launch_worker
from nanoserve.orchestrator.registry import Registry

log = logging.getLogger("nanoserve.orchestrator")

EventListener = Callable[[str, ModelInstance, dict[str, Any]], None]


class Orchestrator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.registry = Registry(settings.models)
        self._listeners: list[EventListener] = []
        self.instances: dict[str, ModelInstance] = {
            model.id: ModelInstance(
                model,
                self._launch,
                start_timeout=settings.worker_start_timeout,
                on_event=self._emit,
            )
            for model in self.registry
        }
        self.accepting = True

    def add_listener(self, listener: EventListener) -> None:
        """Called on every state change of every instance (metrics, logs)."""
        self._listeners.append(listener)

    def _emit(self, event: str, instance: ModelInstance, details: dict[str, Any]) -> None:
        for listener in self._listeners:
            listener(event, instance, details)

    async def _launch(self, config: ModelConfig) -> WorkerProcess:
        return await launch_worker(config, self.settings)

    def instance(self, name: str) -> ModelInstance:
        return self.instances[self.registry.get(name).id]

    async def acquire(self, name: str, *, keep_alive: float | None = None, priority: int | None = None) -> Lease:
        """A lease on a ready worker for model ``name`` (loads it if needed).

        ``keep_alive`` (seconds, -1 forever, 0 unload after this request) and ``priority`` are the
        request's lifecycle controls; None keeps the model's configured values.
        """
        if not self.accepting:
            raise Unavailable("the server is shutting down", retry_after=5)
        instance = self.instance(name)
        instance.request_started()
        try:
            worker = await instance.ensure_ready()
        except BaseException:
            instance.request_finished()
            raise
        return Lease(instance, worker)

    async def load(self, name: str) -> ModelInstance:
        instance = self.instance(name)
        await instance.ensure_ready()
        return instance

    async def unload(self, name: str, *, force: bool = False, reason: str = "manual") -> ModelInstance:
        instance = self.instance(name)
        await instance.stop(reason, force=force)
        return instance

    def views(self) -> list[ModelView]:
        """A read-only snapshot of every model, for status endpoints (``/models/status``, ``/api/ps``)."""
        return [instance.view() for instance in self.instances.values()]

    async def shutdown(self) -> None:
        self.accepting = False
        await asyncio.gather(*(i.close() for i in self.instances.values()), return_exceptions=True)
