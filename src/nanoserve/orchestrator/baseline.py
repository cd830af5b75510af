"""The memory a worker runtime takes before any model: Python, the worker app, the engine's libraries.

Measured once per engine (and nanoserve/Python version) in a fresh process that imports what a
worker imports, then kept in the footprints file::

    python -m nanoserve.orchestrator.baseline llamacpp   # prints {"ram": <bytes>}
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys

from nanoserve.errors import EngineError

log = logging.getLogger("nanoserve.orchestrator")

PROBE_TIMEOUT = 300.0


async def measure_baseline(engine: str) -> dict[str, int]:
    """Run the probe in a subprocess and return its footprint per device."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nanoserve.orchestrator.baseline",
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


def _probe(engine: str) -> dict[str, int]:
    import importlib

    import nanoserve.worker.app  # noqa: F401  (what every worker imports)
    from nanoserve.engines import load_engine_class
    from nanoserve.profiles import profile_for

    load_engine_class(engine)
    module = profile_for(engine).module
    if module is not None:  # engines may import their library only when loading
        importlib.import_module(module)
    from nanoserve.orchestrator.memory import ram_footprint, reset_peak

    gc.collect()
    reset_peak(os.getpid())  # the runtime as it stays, not the peak of importing it
    return {"ram": ram_footprint(os.getpid()) or 0}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m nanoserve.orchestrator.baseline ENGINE")
    print(json.dumps(_probe(sys.argv[1])))
