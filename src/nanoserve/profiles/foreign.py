"""The profiles of the backends that are not our worker: ``command`` (a managed OpenAI-compatible
server) and ``remote`` (a URL someone else runs). Their options models live here, with the rest
of what the gateway knows about them before running anything: no worker runtime to add to the
estimate, a GGUF source or a declared ``memory_mib`` for a managed server, nothing for a remote
one; readiness is the command found on ``PATH`` or the API key's variable set. The handles that
run them are ``orchestrator/handles/command.py`` and ``remote.py``.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from nanoserve.profiles.base import EngineOptions, EngineProfile, ModelParts

if TYPE_CHECKING:
    from nanoserve.config import ModelConfig

MIB = 1 << 20
Extension = Literal["top_k", "min_p", "repeat_penalty", "ignore_eos", "return_context"]
EXTENSIONS: tuple[Extension, ...] = ("top_k", "min_p", "repeat_penalty", "ignore_eos", "return_context")
Capability = Literal["tools", "response_format", "vision"]


class ForeignOptions(EngineOptions):
    """Options every foreign backend shares (a model's ``options``)."""

    upstream_model: str | None = Field(
        default=None, description="the model name the server expects (default: the model's id)"
    )
    capabilities: list[Capability] = Field(
        default_factory=list,
        description="what the server can do beyond plain chat: tools, response_format, vision",
    )
    extensions: list[Extension] = Field(
        default_factory=list, description="nanoserve extension fields the server accepts"
    )


class CommandOptions(ForeignOptions):
    command: str = Field(min_length=1, description="the server's command line, with placeholders")
    health_path: str = Field(default="/health", description="GET path answering 200 once the model is loaded")
    start_timeout: float | None = Field(
        default=None, gt=0, description="seconds to wait for health (default: worker_start_timeout)"
    )
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP"] = "SIGTERM"
    stop_grace: float = Field(default=10.0, ge=0, description="seconds between the stop signal and SIGKILL")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra environment; values may name variables ($HF_TOKEN): never write secrets here",
    )
    metrics_path: str | None = Field(
        default="/metrics", description="the server's Prometheus metrics, merged into /metrics (None: none)"
    )
    memory_mib: int | None = Field(
        default=None, ge=0, description="declared footprint when the source is not a GGUF file"
    )


class RemoteOptions(ForeignOptions):
    base_url: str = Field(
        description="the API root, e.g. https://host/v1 (what OpenAI clients call base_url)"
    )
    api_key_env: str | None = Field(default=None, description="environment variable holding the API key")
    connect_timeout: float = Field(default=5.0, gt=0, description="seconds to connect (and to probe health)")
    read_timeout: float = Field(
        default=300.0, gt=0, description="seconds the upstream may stay silent within a response"
    )
    max_concurrent: int | None = Field(default=None, ge=1, description="requests sent at once (None: no cap)")
    health_path: str = Field(default="/models", description="GET path under base_url answering 200")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")


def command_parts(config: ModelConfig, data_dir: Path) -> ModelParts:
    """Its declared ``memory_mib``, else the llama.cpp parts of a GGUF source (served as it is,
    f16 KV cache: llama-server's default), else nothing until it is measured."""
    declared = config.options.get("memory_mib")
    if declared is not None:
        return ModelParts({"declared": int(declared) * MIB}, "declared memory_mib")
    if config.source is not None:
        from nanoserve.models.gguf import read_gguf_info
        from nanoserve.profiles.llamacpp import GGUF_MAGIC, llamacpp_parts
        from nanoserve.sources import resolve_source

        path = resolve_source(config.source, data_dir)
        if path.is_file() and path.read_bytes()[:4] == GGUF_MAGIC:
            return llamacpp_parts(read_gguf_info(path), config, {"flash_attn": "auto"}, None)
    return ModelParts({}, "nothing declared (set options.memory_mib)")


def remote_parts(config: ModelConfig, data_dir: Path) -> ModelParts:
    return ModelParts({}, "remote: no memory here")


def command_problem(config: ModelConfig) -> str | None:
    try:
        program = shlex.split(str(config.options.get("command", "")))[:1]
    except ValueError as exc:
        return f"options.command: {exc}"
    if not program or shutil.which(program[0]) is None:
        return f"the command {program[0] if program else ''!r} is not on PATH"
    return None


def remote_problem(config: ModelConfig) -> str | None:
    name = config.options.get("api_key_env")
    if name and not os.environ.get(name):
        return f"the environment variable {name} (options.api_key_env) is not set"
    return None


COMMAND = EngineProfile(
    name="command",
    model_parts=command_parts,
    options=CommandOptions,
    runtime=False,
    check_config=command_problem,
)
REMOTE = EngineProfile(
    name="remote",
    model_parts=remote_parts,
    options=RemoteOptions,
    runtime=False,
    check_config=remote_problem,
)
