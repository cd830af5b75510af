"""``engine: command``: any OpenAI-compatible server, started from a command template and managed
like our own workers (llama.cpp's ``llama-server``, ``vllm serve``, llama-cpp-python's server).

The template is split with ``shlex`` and each argument filled on its own: it never goes through
a shell. Placeholders: ``{source} {port} {host} {context_length} {parallel} {threads}
{model_id}`` and ``{ctx_total}`` (context_length x parallel, for servers such as llama-server
whose ``-c`` is the total over all slots). The server listens on a free loopback port, its
output goes to ``data_dir/logs/command-<model>.log``, and it runs under the reaper
(``reaper.py``) in its own process group: stopping the model stops the group, and a gateway
that dies (even by SIGKILL) takes the group with it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import string
import sys
from pathlib import Path

from nanoserve.config import ModelConfig, Settings
from nanoserve.errors import ConfigError, EngineError
from nanoserve.orchestrator.handles.base import get_ok, poll_health
from nanoserve.orchestrator.handles.process import ProcessWorker, device_env, log_path_for
from nanoserve.orchestrator.handles.translate import parse_options
from nanoserve.profiles.foreign import CommandOptions
from nanoserve.sources import resolve_source

REAPER = Path(__file__).with_name("reaper.py")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
PLACEHOLDERS = ("source", "port", "host", "context_length", "parallel", "threads", "model_id", "ctx_total")
LOOPBACK = "127.0.0.1"


def command_options(config: ModelConfig) -> CommandOptions:
    return parse_options(CommandOptions, config)


def free_port() -> int:
    """A port free on loopback now (the server binds it a moment later; a clash fails its start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def fill_template(template: str, values: dict[str, str]) -> list[str]:
    """``template`` split like a shell would, each argument's placeholders filled; no shell runs."""
    try:
        argv = shlex.split(template)
    except ValueError as exc:
        raise ConfigError(f"command {template!r}: {exc}") from exc

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = " ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ConfigError(f"command {template!r}: unknown placeholder {{{name}}} (known: {known})")
        return values[name]

    return [PLACEHOLDER.sub(fill, arg) for arg in argv]


def expand_env(env: dict[str, str]) -> dict[str, str]:
    """``$NAME`` / ``${NAME}`` in values taken from the gateway's environment (missing: an error)."""
    try:
        return {key: string.Template(value).substitute(os.environ) for key, value in env.items()}
    except KeyError as exc:
        raise EngineError(f"options.env names the environment variable {exc}, which is not set") from None
    except ValueError as exc:
        raise EngineError(f"options.env: {exc}") from None


def template_values(config: ModelConfig, port: int, data_dir: Path | None = None) -> dict[str, str]:
    values = {
        "port": str(port),
        "host": LOOPBACK,
        "context_length": str(config.context_length),
        "parallel": str(config.parallel),
        "threads": str(config.effective_threads),
        "model_id": config.id,
        "ctx_total": str(config.context_length * config.parallel),
    }
    if config.source is not None:
        values["source"] = str(resolve_source(config.source, data_dir))
    return values


class CommandWorker(ProcessWorker):
    kind = "server"
    speaks_nanoserve = False

    def __init__(self, config: ModelConfig, settings: Settings, device: str | None = None):
        self.options = command_options(config)
        self.device_env = device_env(device, settings)
        super().__init__(
            config.id,
            log_path_for(settings.data_dir, "command", config.id),
            stop_signal=signal.Signals[self.options.stop_signal],
            stop_grace=self.options.stop_grace,
        )
        self.config = config
        self.data_dir = settings.data_dir
        self.metrics_path = self.options.metrics_path

    async def start(self) -> None:
        port = free_port()
        argv = fill_template(self.options.command, template_values(self.config, port, self.data_dir))
        program = shutil.which(argv[0])
        if program is None:
            raise EngineError(f"model '{self.model}': the command {argv[0]!r} was not found on PATH")
        env = {**os.environ, **self.device_env, **expand_env(self.options.env)}
        self.listen_on(port)
        reaper = [sys.executable, "-I", str(REAPER), str(self.stop_grace), str(int(self.stop_signal)), "--"]
        await self.spawn([*reaper, program, *argv[1:]], env)

    async def wait_healthy(self, timeout: float) -> None:
        limit = self.options.start_timeout or timeout
        setting = "options.start_timeout" if self.options.start_timeout else "worker_start_timeout"
        await poll_health(
            self, lambda: get_ok(self.client, self.options.health_path, 2.0), limit, setting=setting
        )

    async def healthy(self, timeout: float) -> bool:
        return await get_ok(self.client, self.options.health_path, timeout)
