"""Measured footprints and runtime baselines, kept under the data dir for the next start.

``<data_dir>/memory/footprints.json``::

    {"version": 1,
     "footprints": {"<key>": {"model": "smollm2:135m", "bytes": {"ram": 601882624},
                              "measured_at": 1763770000.0}},
     "baselines": {"llamacpp|nanoserve 0.1.0|python 3.11": {"ram": 41000000}}}

A footprint's key is a hash of what decides a model's memory: engine, source, context length,
parallel slots and engine options (not threads). A new measurement keeps the larger value per
device, so a footprint only grows (a model that once needed N bytes may need them again).
Writes are atomic (temporary file, then rename); reads and writes are blocking (use a thread).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

from nanoserve import __version__
from nanoserve.config import ModelConfig

log = logging.getLogger("nanoserve.orchestrator")

FORMAT_VERSION = 1


def footprint_key(config: ModelConfig) -> str:
    facts = {
        "engine": config.engine,
        "source": config.source,
        "kind": config.kind,
        "context_length": config.context_length,
        "parallel": config.parallel,
        "options": config.options,
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()
    return f"{config.id}@{digest[:16]}"


def baseline_key(engine: str) -> str:
    python = ".".join(platform.python_version_tuple()[:2])
    return f"{engine}|nanoserve {__version__}|python {python}"


class FootprintStore:
    """The footprints file; one instance per orchestrator (the lock serialises its threads)."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / "memory" / "footprints.json"
        self._lock = threading.Lock()
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") != FORMAT_VERSION:
                    raise ValueError(f"format version {data.get('version')}")
            except FileNotFoundError:
                data = {}
            except (OSError, ValueError, AttributeError) as exc:
                log.warning("ignoring unreadable %s: %s", self.path, exc)
                data = {}
            data.setdefault("footprints", {})
            data.setdefault("baselines", {})
            data["version"] = FORMAT_VERSION
            self._data = data
        return self._data

    def _save(self) -> None:
        assert self._data is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def footprint(self, key: str) -> dict[str, int] | None:
        with self._lock:
            entry = self._load()["footprints"].get(key)
        return {d: int(b) for d, b in entry["bytes"].items()} if entry else None

    def record_footprint(self, key: str, model: str, measured: dict[str, int]) -> dict[str, int]:
        """Merge a measurement (max per device) and persist it; returns the stored footprint."""
        with self._lock:
            footprints = self._load()["footprints"]
            previous = footprints.get(key, {}).get("bytes", {})
            merged = {d: max(int(previous.get(d, 0)), measured.get(d, 0)) for d in {*previous, *measured}}
            footprints[key] = {"model": model, "bytes": merged, "measured_at": time.time()}
            self._save()
        return merged

    def baseline(self, engine: str) -> dict[str, int] | None:
        with self._lock:
            entry = self._load()["baselines"].get(baseline_key(engine))
        return {d: int(b) for d, b in entry.items()} if entry else None

    def record_baseline(self, engine: str, measured: dict[str, int]) -> None:
        with self._lock:
            self._load()["baselines"][baseline_key(engine)] = measured
            self._save()
