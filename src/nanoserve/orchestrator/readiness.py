"""Is every configured model loadable? (weights present and readable, engine installed)

Checked without loading anything: ``/ready`` must answer fast.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
from pathlib import Path

from nanoserve.config import ModelConfig
from nanoserve.errors import ConfigError
from nanoserve.sources import resolve_source

# engine -> the Python module it needs installed
ENGINE_MODULES = {"llamacpp": "llama_cpp", "sentence-transformers": "sentence_transformers"}
GGUF_MAGIC = b"GGUF"


def _check_weights(engine: str, path: Path) -> str | None:
    if engine == "llamacpp":
        try:
            with path.open("rb") as f:
                magic = f.read(4)
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror}"
        if magic != GGUF_MAGIC:
            return f"{path} is not a GGUF file"
    elif engine == "sentence-transformers" and (
        not path.is_dir() or not any((path / n).exists() for n in ("modules.json", "config.json"))
    ):
        return f"{path} is not a sentence-transformers model directory"
    return None


def _backend_problem(config: ModelConfig) -> str | None:
    """A managed server's program is on PATH; a remote's API key variable is set."""
    if config.engine == "command":
        try:
            program = shlex.split(str(config.options.get("command", "")))[:1]
        except ValueError as exc:
            return f"options.command: {exc}"
        if not program or shutil.which(program[0]) is None:
            return f"the command {program[0] if program else ''!r} is not on PATH"
    elif config.engine == "remote":
        name = config.options.get("api_key_env")
        if name and not os.environ.get(name):
            return f"the environment variable {name} (options.api_key_env) is not set"
    return None


def model_problem(config: ModelConfig) -> str | None:
    """Why ``config`` cannot be loaded, or None if it can."""
    if config.engine in ("command", "remote") and (problem := _backend_problem(config)) is not None:
        return problem
    module = ENGINE_MODULES.get(config.engine)
    if module is not None and importlib.util.find_spec(module) is None:
        return f"engine '{config.engine}' needs the Python package '{module}', which is not installed"
    if config.source is None:
        return None if module is None else "no source configured"
    try:
        path = resolve_source(config.source)
    except ConfigError as exc:
        return exc.message
    return _check_weights(config.engine, path)
