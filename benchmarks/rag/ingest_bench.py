"""Ingestion speed: N short text files (~12 chunks each) into a new collection, from the CLI and
from REST, side by side with the embedding model's own throughput on the same chunks.

The files are cut from a built corpus (benchmarks/rag/corpora/build.sh; the debian handbook by
default): paragraphs of 450-780 characters, 13 per file, so each paragraph is one chunk. Needs a
running gateway (``nanoserve serve``) at ``--url``.

    python benchmarks/rag/ingest_bench.py --url http://127.0.0.1:PORT --corpus CORPORA/debian \
        --files 250 -o benchmarks/rag/results/ingest.json

Measured, each into a fresh collection, in this order:
  model     POST /v1/embeddings of the same chunk texts (title-prefixed as ingestion does), in
            requests of ``--batch`` texts (the gateway's own request size for the default model),
            two in flight: the model's ceiling, which ingestion can approach but not pass
  cli       ``nanoserve ingest DIR`` (uploads of 32 files, 2 in flight; progress bar)
  rest      POST /v1/rag/collections/{c}/ingest, 32 files a request, 2 in flight, streamed results
  rest-1    (``--single``) POST /v1/rag/collections/{c}/documents, one file a request, 8 in flight
  model     again, after the ingestions: the machine's load can change during a run
With ``--reference-model`` (say the same weights on ``backend: onnx``), that model's own run
comes just before each model run, and the two rates' ratio is printed: the speed of the backend
side by side with the reference's, on the same chunks, under the same load; and the cosine of each
chunk's two vectors (how far the backend's vectors are from the reference's).
Each ingestion's chunks/s is also given as a share of the mean of the two model runs. On a busy
machine the CPU the model gets changes from minute to minute, so each run also records the CPU
seconds the embedding worker spent (/proc, same machine only): chunks per worker CPU second, as a
share of the model-only runs', says whether ingestion makes the model do more work per chunk
(requests not full, padding) independently of the load. With ``--gateway-log`` (the gateway's
log file, same machine) each ingestion also reports the share of its wall time during which an
embedding request was in flight at the model: 1.0 means the model never waited for the pipeline
(parsing, packing, writing), so the ingestion ran at whatever speed the model had.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from nanoserve.rag.chunking import chunk_document, embedding_text
from nanoserve.rag.documents import parse_document

PER_FILE = 13
NANOSERVE = (sys.executable, "-m", "nanoserve")


def make_files(corpus: Path, out: Path, count: int) -> int:
    """Write ``count`` text files of PER_FILE paragraphs; returns the chunks they make."""
    sentences: list[str] = []
    for path in sorted(corpus.glob("*.html")):
        text = parse_document(path.read_bytes(), "html", name=path.name).text
        sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 40 <= len(s.strip()) <= 300]
    paragraphs, current = [], ""
    for s in sentences:
        current = f"{current} {s}".strip()
        if len(current) >= 450:
            if len(current) <= 780:
                paragraphs.append(current)
            current = ""
    needed = count * PER_FILE
    if len(paragraphs) < needed:
        paragraphs = (paragraphs * (needed // max(1, len(paragraphs)) + 1))[:needed]
    chunks = 0
    for i in range(count):
        body = "\n\n".join(paragraphs[i * PER_FILE : (i + 1) * PER_FILE])
        path = out / f"note-{i:04d}.txt"
        path.write_text(body + "\n")
        chunks += len(chunk_document(parse_document(body, "text", name=path.name)))
    return chunks


def chunk_texts(folder: Path, limit: int) -> list[str]:
    texts: list[str] = []
    for path in sorted(folder.glob("*.txt")):
        parsed = parse_document(path.read_text(), "text", name=path.name)
        texts += [embedding_text(parsed.title, c.section, c.text) for c in chunk_document(parsed)]
        if len(texts) >= limit:
            break
    return texts[:limit]


async def model_rate(
    url: str, model: str, texts: list[str], batch: int, jobs: int
) -> tuple[float, list[list[float]]]:
    """Chunks per second, and the vectors in input order."""
    gate = asyncio.Semaphore(jobs)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(part: list[str]) -> list[list[float]]:
            async with gate:
                r = await client.post("/v1/embeddings", json={"model": model, "input": part})
                r.raise_for_status()
                return [d["embedding"] for d in r.json()["data"]]

        started = time.perf_counter()
        parts = await asyncio.gather(*(one(texts[i : i + batch]) for i in range(0, len(texts), batch)))
        return len(texts) / (time.perf_counter() - started), [v for part in parts for v in part]


async def rest_ingest(url: str, collection: str, files: list[Path], per_request: int, jobs: int) -> float:
    """POST .../ingest with ``per_request`` files a request (1: the one-document route)."""
    gate = asyncio.Semaphore(jobs)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(group: list[Path]) -> None:
            async with gate:
                if per_request == 1:
                    r = await client.post(
                        f"/v1/rag/collections/{collection}/documents",
                        files={"file": (group[0].name, group[0].read_bytes())},
                        data={"name": group[0].name},
                    )
                else:
                    r = await client.post(
                        f"/v1/rag/collections/{collection}/ingest",
                        files=[("file", (p.name, p.read_bytes())) for p in group],
                    )
                r.raise_for_status()
                if per_request > 1 and r.json()["failed"]:
                    raise RuntimeError(f"failed documents: {r.json()}")

        started = time.perf_counter()
        groups = [files[i : i + per_request] for i in range(0, len(files), per_request)]
        await asyncio.gather(*(one(g) for g in groups))
        return time.perf_counter() - started


def cli_ingest(url: str, collection: str, folder: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [*NANOSERVE, "ingest", str(folder), "-c", collection, "--url", url],
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"cli     {done.stdout.strip()}", flush=True)
    return time.perf_counter() - started


def worker_cpu(url: str, model: str) -> float:
    """CPU seconds the model's worker process has used (user + system), from /proc."""
    import os

    status = httpx.get(f"{url}/models/status", timeout=60).json()
    pid = next(m["pid"] for m in status["models"] if m["id"] == model)
    if pid is None:  # not loaded yet: load it (its load is not part of any run)
        httpx.post(f"{url}/models/load", json={"model": model}, timeout=600).raise_for_status()
        return worker_cpu(url, model)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_ACCESS = re.compile(r"^(\S+?)Z? INFO nanoserve\.access: POST /v1/embeddings 200 .*duration_ms=([\d.]+)")


def busy_share(log: Path, start: float, end: float) -> float:
    """The share of [start, end] (epoch seconds) covered by embedding requests of the gateway's
    access log (each logged at its end with its duration)."""
    from datetime import UTC, datetime

    spans = []
    for line in log.read_text(errors="replace").splitlines():
        if m := _ACCESS.match(line):
            stop = datetime.fromisoformat(m[1]).replace(tzinfo=UTC).timestamp()
            first, last = max(start, stop - float(m[2]) / 1e3), min(end, stop)
            if last > first:
                spans.append((first, last))
    covered, reach = 0.0, start
    for first, last in sorted(spans):
        if last > reach:
            covered += last - max(first, reach)
            reach = last
    return covered / (end - start)


def collection_counts(url: str, collection: str) -> tuple[int, int]:
    info = httpx.get(f"{url}/v1/rag/collections/{collection}", timeout=60).json()
    return info["documents"], info["chunks"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--corpus", required=True, type=Path, help="a folder of HTML files to cut text from")
    parser.add_argument("--files", type=int, default=250)
    parser.add_argument("--batch", type=int, default=32, help="texts per request of the model-only runs")
    parser.add_argument("--single", action="store_true", help="also the one-document route, 8 in flight")
    parser.add_argument("--model", default="all-minilm:l6-v2")
    parser.add_argument("--model-chunks", type=int, default=640, help="chunks of each model-only run")
    parser.add_argument(
        "--reference-model",
        help="another model of the gateway (e.g. the same weights on backend onnx): its model-only "
        "run follows each of --model's, and their ratio is printed",
    )
    parser.add_argument("--skip", default="", help="comma-separated: model,cli,rest")
    parser.add_argument("--gateway-log", type=Path, help="the gateway's log: the model's busy share")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    url = args.url.rstrip("/")
    run = uuid.uuid4().hex[:6]
    results: dict[str, Any] = {"files": args.files, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results["chunks"] = chunks = make_files(args.corpus, folder, args.files)
        files = sorted(folder.glob("*.txt"))
        texts = chunk_texts(folder, args.model_chunks)
        print(f"{args.files} files, {chunks} chunks", flush=True)

        vectors: dict[str, list[list[float]]] = {}

        def model(label: str, name: str = args.model) -> None:
            if "model" in skip:
                return
            if name == args.model and args.reference_model:
                model(label.replace("model", "ref"), args.reference_model)
            cpu = worker_cpu(url, name)
            rate, vectors[label] = asyncio.run(model_rate(url, name, texts, args.batch, 2))
            cpu = worker_cpu(url, name) - cpu
            results["runs"][label] = {
                "chunks": len(texts), "chunks_per_s": round(rate, 1), "worker_cpu_s": round(cpu, 1),
                "chunks_per_cpu_s": round(len(texts) / cpu, 1),
            }  # fmt: skip
            print(f"{label:<7} {rate:.1f} chunks/s (embeddings only, {len(texts)} chunks; "
                  f"{len(texts) / cpu:.1f} per worker CPU s)", flush=True)  # fmt: skip

        model("model")
        measured: list[tuple[str, str, float, float, tuple[float, float]]] = []

        def ingestion(label: str, collection: str, ingest: Callable[[], float]) -> None:
            cpu, started = worker_cpu(url, args.model), time.time()
            seconds = ingest()
            window = (started, time.time())
            measured.append((label, collection, seconds, worker_cpu(url, args.model) - cpu, window))

        if "cli" not in skip:
            ingestion("cli", f"bench-cli-{run}", lambda: cli_ingest(url, f"bench-cli-{run}", folder))
        if "rest" not in skip:
            ingestion("rest", f"bench-rest-{run}",
                      lambda: asyncio.run(rest_ingest(url, f"bench-rest-{run}", files, 32, 2)))  # fmt: skip
        if args.single:
            ingestion("rest-1", f"bench-one-{run}",
                      lambda: asyncio.run(rest_ingest(url, f"bench-one-{run}", files, 1, 8)))  # fmt: skip
        model("model-2")
        for label, collection, seconds, cpu, window in measured:
            documents, stored = collection_counts(url, collection)
            n = args.files
            results["runs"][label] = {
                "seconds": round(seconds, 1), "documents": documents, "chunks": stored,
                "files_per_s": round(n / seconds, 2), "chunks_per_s": round(stored / seconds, 1),
                "worker_cpu_s": round(cpu, 1), "chunks_per_cpu_s": round(stored / cpu, 1),
            }  # fmt: skip
            if args.gateway_log:
                results["runs"][label]["model_busy_share"] = round(busy_share(args.gateway_log, *window), 3)
            print(f"{label:<7} {n} files, {documents} documents, {stored} chunks in {seconds:.1f} s: "
                  f"{n / seconds:.2f} files/s, {stored / seconds:.1f} chunks/s; "
                  f"{stored / cpu:.1f} per worker CPU s; model busy "
                  f"{results['runs'][label].get('model_busy_share', '?')} of the time", flush=True)  # fmt: skip
            httpx.delete(f"{url}/v1/rag/collections/{collection}", timeout=60)
    models = [results["runs"][k] for k in ("model", "model-2") if k in results["runs"]]
    references = [results["runs"][k] for k in ("ref", "ref-2") if k in results["runs"]]
    if models and references:
        pairs = list(zip(models, references, strict=True))
        ratios = [m["chunks_per_s"] / r["chunks_per_s"] for m, r in pairs]
        per_cpu = [m["chunks_per_cpu_s"] / r["chunks_per_cpu_s"] for m, r in pairs]
        results["model_over_reference"] = [round(x, 2) for x in ratios]
        results["model_over_reference_per_cpu"] = [round(x, 2) for x in per_cpu]
        print(f"model   {' and '.join(f'{x:.2f}' for x in ratios)} x {args.reference_model}'s chunks/s, "
              f"{' and '.join(f'{x:.2f}' for x in per_cpu)} x its chunks per worker CPU s "
              "(each pair run back to back)")  # fmt: skip
        a, b = (np.array(vectors[k]) for k in ("model", "ref"))
        cosines = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        results["cosine_to_reference"] = {
            "min": round(float(cosines.min()), 5), "p1": round(float(np.percentile(cosines, 1)), 5),
            "mean": round(float(cosines.mean()), 6),
        }  # fmt: skip
        print(f"model   vectors at cosine {cosines.min():.5f} (min) / {cosines.mean():.6f} (mean) to "
              f"{args.reference_model}'s on the same {len(cosines)} chunks")  # fmt: skip
    if models:
        ceiling = sum(m["chunks_per_s"] for m in models) / len(models)
        per_cpu = sum(m["chunks"] for m in models) / sum(m["worker_cpu_s"] for m in models)
        for label, row in results["runs"].items():
            if not label.startswith(("model", "ref")):
                row["share_of_model_rate"] = round(row["chunks_per_s"] / ceiling, 2)
                row["share_of_model_per_cpu"] = round(row["chunks_per_cpu_s"] / per_cpu, 2)
                print(f"{label:<7} {row['share_of_model_rate']:.2f} x the model's {ceiling:.1f} chunks/s; "
                      f"{row['share_of_model_per_cpu']:.2f} x its {per_cpu:.1f} chunks per worker CPU s")  # fmt: skip
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
