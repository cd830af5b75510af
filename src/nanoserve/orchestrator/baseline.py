"""The memory a worker runtime takes before any model: Python, the worker app, the engine's libraries.

Measured once per engine (and nanoserve/Python version) in a fresh process that imports what a
worker imports (``nanoserve.worker.baseline``, named here by its module name only: the gateway
never imports the worker or an engine), then kept in the footprints file::

    python -m nanoserve.worker.baseline llamacpp   # prints {"ram": <bytes>}
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from nanoserve.errors import EngineError

log = logging.getLogger("nanoserve.orchestrator")

PROBE_MODULE = "nanoserve.worker.baseline"
PROBE_TIMEOUT = 300.0


async def measure_baseline(engine: str) -> dict[str, int]:
    """Run the probe in a subprocess and return its footprint per device."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        PROBE_MODULE,
        engine,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise EngineError(
            f"measuring the runtime of engine '{engine}' took over {PROBE_TIMEOUT:.0f}s"
        ) from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip()[-1000:]
        raise EngineError(f"measuring the runtime of engine '{engine}' failed: {tail}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return {device: int(size) for device, size in result.items()}
