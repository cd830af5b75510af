"""The simulated-GPU ledger shared by the gateway and its workers (config ``devices:``).

The gateway tells a worker the device it was placed on (``DEVICE_ENV``) and where ledgers live
(``SIMGPU_DIR_ENV``); a worker that holds simulated GPU memory writes ``<pid>.json`` there with
``{"device": "gpu1", "bytes": N}``; the gateway reads the ledgers of live processes as NVML's
per-process list.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SIMGPU_DIR_ENV = "NANOSERVE_SIMGPU_DIR"
DEVICE_ENV = "NANOSERVE_DEVICE"


def write_ledger(directory: Path, device: str, size: int, pid: int | None = None) -> Path:
    """Record that process ``pid`` (default: this one) holds ``size`` bytes of ``device``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{pid or os.getpid()}.json"
    path.write_text(json.dumps({"device": device, "bytes": int(size)}))
    return path


def read_ledger(path: Path) -> tuple[int, str, int] | None:
    """(pid, device, bytes) of a ledger file, or None if it is not one."""
    try:
        entry = json.loads(path.read_text())
        return int(path.stem), str(entry["device"]), int(entry["bytes"])
    except (ValueError, KeyError, OSError, TypeError):
        return None
