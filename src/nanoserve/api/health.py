"""Liveness (``/health``: ``status`` and the server's ``timestamp``, seed 000's shape) and
readiness (``/ready``)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from nanoserve.orchestrator.readiness import model_problem
from nanoserve.orchestrator.status import iso


def create_health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "timestamp": iso(time.time())})

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        orchestrator = request.app.state.orchestrator
        problems = {
            m.id: p
            for m in orchestrator.registry
            if (p := model_problem(m, orchestrator.settings.data_dir)) is not None
        }
        if not orchestrator.accepting:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        if problems:
            reason = "; ".join(f"{model}: {problem}" for model, problem in problems.items())
            return JSONResponse(
                {"status": "not ready", "reason": reason, "models": problems}, status_code=503
            )
        return JSONResponse({"status": "ready", "models": [m.id for m in orchestrator.registry]})

    return router
