"""Is every configured model loadable? (engine serves its kind, engine installed, weights readable)

Checked without loading anything: ``/ready`` must answer fast. What an engine needs is its
profile's fact (``nanoserve.profiles``): the kinds it serves, the Python package it needs, and
what a loadable source looks like.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nanoserve.config import ModelConfig
from nanoserve.errors import ConfigError
from nanoserve.profiles import profile_for
from nanoserve.sources import resolve_source


def model_problem(config: ModelConfig, data_dir: Path | None = None) -> str | None:
    """Why ``config`` cannot be loaded, or None if it can (``data_dir``: where hub sources are)."""
    profile = profile_for(config.engine)
    if profile.check_config is not None and (problem := profile.check_config(config)) is not None:
        return problem
    if config.kind not in profile.kinds:
        served = " and ".join(sorted(profile.kinds))
        return f"engine '{config.engine}' serves {served} models, not {config.kind} models"
    module = profile.module
    if module is not None and importlib.util.find_spec(module) is None:
        return f"engine '{config.engine}' needs the Python package '{module}', which is not installed"
    if config.source is None:
        return None if profile.check_source is None else "no source configured"
    try:
        path = resolve_source(config.source, data_dir)
    except ConfigError as exc:
        return exc.message
    return None if profile.check_source is None else profile.check_source(path)
