"""The admin API: model status, load (or its dry run) and unload. JSON, sizes in MiB.

    GET  /models/status                        devices (RAM, each GPU) and every model (with its replicas)
    POST /models/load   {model, service?, priority?, keep_alive?, pinned?, replicas?, dry_run?}
    POST /models/unload {model, force?}                 every replica
    POST /models/scale  {model, replicas}               exactly that many (null: automatic again)

``/models/status`` also carries seed 002's summary (``total_mb``, ``used_mb``, ``free_mb``,
``utilization_percent`` of the GPUs or else RAM, ``loaded_models``); a load's ``service`` (seed 002
names the container serving the model) is matched against the model's engine: the answer says
which engine serves it and, when the two differ, a ``note`` that the service was ignored.

Errors are the OpenAI error body: 404 unknown model, 409 unload with requests in flight (without
``force``), 503 no room right now (``Retry-After``), 507 the model can never fit the budget.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from nanoserve.config import parse_duration
from nanoserve.orchestrator.orchestrator import Orchestrator
from nanoserve.orchestrator.status import group_status, plan_status
from nanoserve.wire.body import parse_body

M = TypeVar("M", bound=BaseModel)


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    service: str | None = Field(
        default=None,
        max_length=200,
        description="the engine expected to serve it ('llama-cpp' is llamacpp); another is ignored with a note",
    )
    priority: int | None = Field(default=None, description="higher is kept longer")
    keep_alive: float | None = Field(
        default=None, description="seconds or a duration ('5m'); -1 forever, 0 unload when idle"
    )
    pinned: StrictBool | None = Field(default=None, description="never evicted while loaded")
    replicas: int | None = Field(default=None, ge=1, le=64, description="load this many replicas")
    dry_run: StrictBool = Field(default=False, description="only say what loading would evict and leave")

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


class ScaleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    replicas: int | None = Field(
        ge=0, le=64, description="replicas to run; 0 unloads them all; null returns to replicas.min/max"
    )


class UnloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    force: StrictBool = Field(
        default=False, description="cut off requests in flight (streams end with an error)"
    )


def _engine_key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def service_answer(body: LoadRequest, engine: str) -> dict[str, Any]:
    """What a load answers about the ``service`` asked for: nothing when none was, else the engine
    that serves the model and, unless the two name the same engine, a note that it was ignored."""
    if body.service is None:
        return {}
    if _engine_key(body.service) == _engine_key(engine):
        return {"service": engine}
    note = (
        f"service {body.service!r} ignored: {body.model!r} is served by its configured engine "
        f"{engine!r} (models[].engine in the config)"
    )
    return {"service": engine, "note": note}


def _orchestrator(request: Request) -> Orchestrator:
    orchestrator: Orchestrator = request.app.state.orchestrator
    return orchestrator


async def _parse(request: Request, model: type[M]) -> M:
    """The body as ``model``: our own parser (size, depth, Unicode bounds; errors name the problem)."""
    return await parse_body(request, model, request.app.state.settings.max_body_bytes)


def create_admin_router() -> APIRouter:
    router = APIRouter(prefix="/models", tags=["admin"])

    @router.get("/status")
    async def status(request: Request) -> dict[str, Any]:
        return await _orchestrator(request).status()

    @router.post("/load")
    async def load(request: Request) -> dict[str, Any]:
        body = await _parse(request, LoadRequest)
        orchestrator = _orchestrator(request)
        if body.dry_run:
            plan = plan_status(await orchestrator.plan(body.model))
            return {**plan, **service_answer(body, orchestrator.group(body.model).config.engine)}
        await orchestrator.load(
            body.model,
            priority=body.priority,
            keep_alive=body.keep_alive,
            pinned=body.pinned,
            replicas=body.replicas,
        )
        group = orchestrator.group(body.model)
        return {**group_status(group), **service_answer(body, group.config.engine)}

    @router.post("/unload")
    async def unload(request: Request) -> dict[str, Any]:
        body = await _parse(request, UnloadRequest)
        orchestrator = _orchestrator(request)
        await orchestrator.unload(body.model, force=body.force)
        return group_status(orchestrator.group(body.model))

    @router.post("/scale")
    async def scale(request: Request) -> dict[str, Any]:
        body = await _parse(request, ScaleRequest)
        return group_status(await _orchestrator(request).scale(body.model, body.replicas))

    return router
