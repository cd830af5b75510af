"""One RAG prompt sent at once to two gateways whose chat model differs only in ``threads``.

The prompt is rebuilt from a trace (``nanoserve rag trace ID > trace.json``) the way the pipeline
builds it (``pipeline.build_messages``); each gateway gets the same request at the same moment
(max_tokens 96, temperature 0, no stop: the same work). Prints per gateway the wall time, the
chat worker's CPU time (utime + stime from /proc) and the usage.

    python benchmarks/rag/threads_probe.py trace.json NAME:PORT:WORKER_PID NAME:PORT:WORKER_PID
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from generation_cost import cpu_seconds

from nanoserve.rag.pipeline import build_messages
from nanoserve.rag.store.base import StoredChunk


def main() -> None:
    trace = json.loads(Path(sys.argv[1]).read_text())
    chunks = [
        StoredChunk(
            c["chunk_id"], 0, c["document"], "", c["document"], c["section"], 0, c["text"], 0, 0, 0.0, 0.0
        )
        for c in trace["retrieved"]
    ]
    messages = build_messages(trace["query"], chunks, 1800)
    out: dict[str, Any] = {}

    def run(name: str, port: str, pid: int) -> None:
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        body = {"model": "smollm2:135m", "messages": messages, "max_tokens": 96, "temperature": 0}
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=1800).json()
        out[name] = {
            "wall_s": round(time.perf_counter() - wall, 1), "worker_cpu_s": round(cpu_seconds(pid) - cpu, 1),
            "usage": r["usage"], "finish": r["choices"][0]["finish_reason"],
            "text": r["choices"][0]["message"]["content"][:80],
        }  # fmt: skip

    targets = [arg.split(":") for arg in sys.argv[2:]]
    threads = [threading.Thread(target=run, args=(n, p, int(pid))) for n, p, pid in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
