"""The worker half of the runtime baseline: a fresh process imports what a worker hosting ENGINE
imports (the worker app, the engine class, the library its profile names), then prints its memory::

    python -m nanoserve.worker.baseline llamacpp   # prints {"ram": <bytes>}
    python -m nanoserve.worker.baseline sentence-transformers:onnx   # a variant's imports

The gateway runs it as a subprocess by module name (``orchestrator/baseline.py``) and keeps the
result in the footprints file.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys


def probe(engine: str) -> dict[str, int]:
    import nanoserve.worker.app  # noqa: F401  (what every worker imports)
    from nanoserve.engines import load_engine_class
    from nanoserve.orchestrator.memory import ram_footprint, reset_peak
    from nanoserve.profiles import profile_for

    engine, _, variant = engine.partition(":")
    load_engine_class(engine)
    for module in profile_for(engine).runtime_modules(variant or None):
        importlib.import_module(module)  # engines may import their library only when loading
    gc.collect()
    reset_peak(os.getpid())  # the runtime as it stays, not the peak of importing it
    return {"ram": ram_footprint(os.getpid()) or 0}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m nanoserve.worker.baseline ENGINE")
    print(json.dumps(probe(sys.argv[1])))
