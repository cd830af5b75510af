"""Pulling hub models (``source: hf:...``, ``models/hub.py``) for Ollama's ``/api/pull`` and
``nanoserve pull``, with progress in Ollama's shape.

A configured model is pulled from its ``hf:`` source (a model with a local source is already
"pulled"). With ``allow_pull: true`` any ``hf:`` name may be pulled: it is then served under that
name (a GGUF file as a chat model, a repository as a sentence-transformers embedding model) until
the next restart or config reload; add it to the config to keep it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import BadRequest, ConfigError, NotFound
from nanoserve.models import hub
from nanoserve.orchestrator.orchestrator import Orchestrator

PROGRESS_EVERY_SECONDS = 0.25


class Puller:
    def __init__(self, orchestrator: Orchestrator, settings: Settings):
        self.orchestrator = orchestrator
        self.settings = settings
        self._locks: dict[hub.HubRef, asyncio.Lock] = {}  # one download of a reference at a time

    def _source(self, name: str) -> tuple[ModelConfig | None, str | None]:
        """The configured model of ``name`` (None: an ``hf:`` name ``allow_pull`` admits) and
        the source to pull; 404 for anything else."""
        config = self.orchestrator.registry.find(name)
        if config is not None:
            return config, config.source
        if hub.is_hub_source(name) and self.settings.allow_pull:
            return None, name
        hint = (
            "set allow_pull: true to pull any hf: name"
            if hub.is_hub_source(name)
            else f"name a configured model, or a hub file as {hub.HF_PREFIX}<org>/<repo>/<file> with allow_pull: true"
        )
        raise NotFound(f"model '{name}' not found: {hint}", param="model")

    async def events(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """Ollama's pull progress: ``pulling manifest``, ``pulling <digest>`` with ``total`` and
        ``completed``, ``verifying sha256 digest``, ``success``. Errors raise (before the first
        event: a status; after it, the route reports them in-band)."""
        if not name:
            raise BadRequest("model is required", param="model")
        config, source = self._source(name)
        if not hub.is_hub_source(source):
            yield {"status": "success"}  # local weights: nothing to pull
            return
        try:
            ref = hub.HubRef.parse(source or "")
        except ConfigError as exc:
            raise BadRequest(exc.message, param="model") from exc
        yield {"status": "pulling manifest"}
        async with self._locks.setdefault(ref, asyncio.Lock()):
            async for event in self._download(ref):
                yield event
            path = hub.resolve(ref, hub.hub_dir(self.settings.data_dir))
        yield {"status": "verifying sha256 digest"}
        if config is None and self.orchestrator.registry.find(name) is None:
            self._serve(name, path)
        yield {"status": "success"}

    async def _download(self, ref: hub.HubRef) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[tuple[str, str, int, int | None]] = asyncio.Queue()

        def progress(filename: str, digest: str, done: int, total: int | None) -> None:
            loop.call_soon_threadsafe(updates.put_nowait, (filename, digest, done, total))

        cache = hub.hub_dir(self.settings.data_dir)
        task = asyncio.ensure_future(asyncio.to_thread(hub.pull, ref, cache, progress=progress))
        while not task.done() or not updates.empty():
            update = asyncio.ensure_future(updates.get())
            await asyncio.wait({update, task}, return_when=asyncio.FIRST_COMPLETED)
            if not update.done():
                update.cancel()
                continue
            _, digest, done, total = update.result()
            yield {
                "status": f"pulling {digest[:12]}",
                "digest": f"sha256:{digest}",
                "total": total,
                "completed": done,
            }
        try:
            task.result()
        except ConfigError as exc:  # the reference names no single GGUF file: the client's to fix
            raise BadRequest(exc.message, param="model") from exc

    def _serve(self, name: str, path: Path) -> None:
        """Serve a model pulled by name (``allow_pull``) until the next restart or reload."""
        if path.suffix == ".gguf":
            model = ModelConfig(id=name, source=name, kind="chat", engine="llamacpp")
        else:
            model = ModelConfig(id=name, source=name, kind="embedding", engine="sentence-transformers")
        settings = self.orchestrator.settings
        self.orchestrator.reload(settings.model_copy(update={"models": [*settings.models, model]}))
