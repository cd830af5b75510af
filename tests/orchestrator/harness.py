"""An orchestrator in the test's event loop with real mock-engine workers, and its event log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanoserve.config import MemorySettings, ModelConfig, Settings
from nanoserve.orchestrator.instance import Lease, ModelInstance
from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.orchestrator.planner import MIB

RUNTIME_MIB = 40  # what the fake baseline probe reports for a worker runtime


async def fake_probe(engine: str) -> dict[str, int]:
    return {"ram": RUNTIME_MIB * MIB}


def mock(id: str, mib: int = 0, **fields: Any) -> ModelConfig:
    """A mock chat model whose worker really allocates ``mib`` MiB."""
    options = {"memory_mib": mib, **fields.pop("options", {})}
    return ModelConfig(id=id, engine="mock", options=options, **fields)


@dataclass
class Events:
    log: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, event: str, instance: ModelInstance, details: dict[str, Any]) -> None:
        self.log.append((event, instance.id, dict(details)))

    def of(self, event: str, model: str | None = None) -> list[dict[str, Any]]:
        return [d for e, m, d in self.log if e == event and (model is None or m == model)]

    def unloads(self) -> list[tuple[str, str]]:
        return [(m, d["reason"]) for e, m, d in self.log if e == "unloaded"]


@asynccontextmanager
async def running(
    tmp_path: Path, models: list[ModelConfig], **memory: Any
) -> AsyncIterator[tuple[Orchestrator, Events]]:
    settings = Settings(
        data_dir=tmp_path, models=models, worker_start_timeout=60, memory=MemorySettings(**memory)
    )
    orchestrator = Orchestrator(settings, nvml=None, baseline_probe=fake_probe)
    events = Events()
    orchestrator.add_listener(events)
    try:
        yield orchestrator, events
    finally:
        await orchestrator.shutdown()


async def chat(lease: Lease, max_tokens: int = 2) -> None:
    """One request on a lease's worker; releases the lease."""
    try:
        body = {
            "model": lease.instance.id,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
        }
        response = await lease.worker.client.post("/v1/chat/completions", json.dumps(body).encode())
        try:
            text = await response.read()
        finally:
            response.close()
        assert response.status_code == 200, text
    finally:
        lease.release()


async def request(orchestrator: Orchestrator, model: str, **controls: Any) -> int:
    """A whole request through the orchestrator, as a route would make it; returns the worker pid."""
    lease = await orchestrator.acquire(model, **controls)
    pid = lease.worker.pid
    await chat(lease)
    return pid


async def eventually(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
