"""Worker handles: what runs a model instance (see ``base.py``), chosen by the model's engine.

``engine: command`` is a managed OpenAI-compatible server, ``engine: remote`` a URL someone else
runs; every other engine is hosted by our own worker process.
"""

from __future__ import annotations

from typing import Protocol

from nanoserve.config import ModelConfig, Settings
from nanoserve.orchestrator.handles.base import WorkerHandle, exited_within
from nanoserve.orchestrator.handles.command import CommandWorker, command_options
from nanoserve.orchestrator.handles.local import LocalWorker
from nanoserve.orchestrator.handles.remote import RemoteWorker, remote_options
from nanoserve.orchestrator.handles.translate import ForeignRequests, Passthrough, parse_options
from nanoserve.profiles import profile_for, profile_names

__all__ = [
    "Cluster",
    "CommandWorker",
    "LocalWorker",
    "RemoteWorker",
    "Translator",
    "WorkerHandle",
    "create_handle",
    "exited_within",
    "on_cluster",
    "translator_for",
]

COMMAND = "command"
REMOTE = "remote"
Translator = Passthrough | ForeignRequests


class Cluster(Protocol):
    """Where workers run beyond this machine (``orchestrator/cluster.py``, Ray)."""

    def worker(self, config: ModelConfig, device: str | None) -> WorkerHandle: ...


def on_cluster(config: ModelConfig, settings: Settings) -> bool:
    """Whether ``config``'s workers run on the cluster: our own workers do when there is one;
    managed servers and remote URLs stay where they are."""
    return settings.cluster is not None and config.engine not in (COMMAND, REMOTE)


def create_handle(
    config: ModelConfig, settings: Settings, device: str | None = None, cluster: Cluster | None = None
) -> WorkerHandle:
    """An unstarted handle for one instance of ``config``, placed on ``device`` (a GPU, a node's
    device, or None)."""
    if cluster is not None and on_cluster(config, settings):
        return cluster.worker(config, device)
    if config.engine == COMMAND:
        return CommandWorker(config, settings, device)
    if config.engine == REMOTE:
        return RemoteWorker(config)
    return LocalWorker(config, settings, device)


def translator_for(config: ModelConfig) -> Translator:
    """How requests for ``config`` are rewritten for its backend; validates the backend's options
    (a ``ConfigError`` naming the model)."""
    if config.engine == COMMAND:
        return ForeignRequests(config.id, command_options(config))
    if config.engine == REMOTE:
        return ForeignRequests(config.id, remote_options(config))
    if config.engine in profile_names():  # its options are known: fail now, not at the first load
        parse_options(profile_for(config.engine).options, config)
    return Passthrough()
