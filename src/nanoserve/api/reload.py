"""Config reload without a restart: ``POST /admin/reload`` (admin scope) or SIGHUP to the gateway.

The gateway reads its config again from where it was started with (the same file and flags,
``ConfigSource``) and applies the models and limits (``orchestrator/reload.py``); streams that
are running go on to their end. A config that does not validate is a 400 naming the problem
(SIGHUP: an error in the log) and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from nanoserve.config import Settings
from nanoserve.errors import BadRequest, ConfigError, Conflict
from nanoserve.orchestrator.orchestrator import Orchestrator

log = logging.getLogger("nanoserve.api")

ConfigSource = Callable[[], Settings]  # reads the config as the gateway was started


class Reloader:
    def __init__(self, orchestrator: Orchestrator, source: ConfigSource | None):
        self.orchestrator = orchestrator
        self.source = source
        self._lock = asyncio.Lock()  # one reload at a time
        self._signalled: asyncio.Future[None] | None = None

    async def reload(self) -> dict[str, Any]:
        if self.source is None:
            raise Conflict("this gateway was not started from a config it can read again")
        async with self._lock:
            try:
                settings = await asyncio.to_thread(self.source)
                changes = self.orchestrator.reload(settings)
            except ConfigError as exc:
                raise BadRequest(f"the config was not reloaded: {exc.message}") from exc
        return changes.as_dict()

    def on_sighup(self) -> contextlib.AbstractContextManager[None]:
        """While open, SIGHUP reloads (where the process can take signals: the main thread)."""
        stack = contextlib.ExitStack()
        if self.source is None:
            return stack
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_signal)
        except (RuntimeError, ValueError):  # not the main thread (an app embedded in tests)
            return stack
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)
        return stack

    def _on_signal(self) -> None:
        self._signalled = asyncio.ensure_future(self._logged())

    async def _logged(self) -> None:
        try:
            changes = await self.reload()
        except BadRequest as exc:
            log.error("SIGHUP: %s", exc.message)
        else:
            log.info("SIGHUP: config reloaded: %s", changes)


def create_reload_router() -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"])

    @router.post("/reload")
    async def reload(request: Request) -> dict[str, Any]:
        reloader: Reloader = request.app.state.reloader
        return await reloader.reload()

    return router


def install(app: FastAPI, orchestrator: Orchestrator, source: ConfigSource | None) -> Reloader:
    app.state.reloader = reloader = Reloader(orchestrator, source)
    app.include_router(create_reload_router())
    return reloader
