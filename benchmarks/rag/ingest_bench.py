"""Ingestion speed: N short text files (~12 chunks each) into a new collection, from the CLI and
from REST, side by side with the embedding model's own throughput on the same chunks.

The files are cut from a built corpus (benchmarks/rag/corpora/build.sh; the debian handbook by
default): paragraphs of 450-780 characters, 12 per file, so each paragraph is one chunk. Needs a
running gateway (``nanoserve serve``) at ``--url``.

    python benchmarks/rag/ingest_bench.py --url http://127.0.0.1:PORT --corpus CORPORA/debian \\
        --files 250 --jobs 8 -o benchmarks/rag/results/ingest.json

Measured, each into a fresh collection:
  model     POST /v1/embeddings of the same chunk texts (title-prefixed as ingestion does), 32 a
            request, ``--jobs`` requests in flight: the ceiling ingestion can approach
  cli       ``nanoserve ingest DIR --jobs J``
  rest      POST /v1/rag/collections/{c}/documents, one file a request, J in flight
  cli-j1    (``--sequential N``) the first N files with ``--jobs 1``: one file at a time
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
from pathlib import Path
from typing import Any

import httpx

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


async def model_rate(url: str, model: str, texts: list[str], jobs: int) -> float:
    gate = asyncio.Semaphore(jobs)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(batch: list[str]) -> None:
            async with gate:
                r = await client.post("/v1/embeddings", json={"model": model, "input": batch})
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(texts[i : i + 32]) for i in range(0, len(texts), 32)))
        return len(texts) / (time.perf_counter() - started)


async def rest_ingest(url: str, collection: str, files: list[Path], jobs: int) -> float:
    gate = asyncio.Semaphore(jobs)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(path: Path) -> None:
            async with gate:
                r = await client.post(
                    f"/v1/rag/collections/{collection}/documents",
                    files={"file": (path.name, path.read_bytes())},
                    data={"name": path.name},
                )
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in files))
        return time.perf_counter() - started


def cli_ingest(url: str, collection: str, folder: Path, jobs: int) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [
            *NANOSERVE,
            "ingest",
            str(folder),
            "-c",
            collection,
            "--url",
            url,
            "--jobs",
            str(jobs),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, done.stdout.strip()


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
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=0, help="also ingest this many files with --jobs 1")
    parser.add_argument("--model", default="all-minilm:l6-v2")
    parser.add_argument("--model-chunks", type=int, default=512, help="chunks of the model-only measurement")
    parser.add_argument("--skip", default="", help="comma-separated: model,cli,rest")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    url = args.url.rstrip("/")
    run = uuid.uuid4().hex[:6]
    results: dict[str, Any] = {"files": args.files, "jobs": args.jobs, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results["chunks"] = chunks = make_files(args.corpus, folder, args.files)
        files = sorted(folder.glob("*.txt"))
        print(f"{args.files} files, {chunks} chunks", flush=True)
        if "model" not in skip:
            texts = chunk_texts(folder, args.model_chunks)
            rate = asyncio.run(model_rate(url, args.model, texts, args.jobs))
            results["runs"]["model"] = {"chunks": len(texts), "chunks_per_s": round(rate, 1)}
            print(f"model  {rate:.1f} chunks/s (embeddings only, {len(texts)} chunks)", flush=True)
        measured: list[tuple[str, str, float, int]] = []
        if "cli" not in skip:
            seconds, out = cli_ingest(url, f"bench-cli-{run}", folder, args.jobs)
            measured.append(("cli", f"bench-cli-{run}", seconds, args.files))
            print(f"cli    {out}", flush=True)
        if "rest" not in skip:
            seconds = asyncio.run(rest_ingest(url, f"bench-rest-{run}", files, args.jobs))
            measured.append(("rest", f"bench-rest-{run}", seconds, args.files))
        if args.sequential:
            subset = Path(tmp) / "subset"
            subset.mkdir()
            for p in files[: args.sequential]:
                (subset / p.name).write_bytes(p.read_bytes())
            seconds, out = cli_ingest(url, f"bench-seq-{run}", subset, 1)
            measured.append(("cli-j1", f"bench-seq-{run}", seconds, args.sequential))
        for label, collection, seconds, n in measured:
            documents, stored = collection_counts(url, collection)
            results["runs"][label] = {
                "seconds": round(seconds, 1), "documents": documents, "chunks": stored,
                "files_per_s": round(n / seconds, 2), "chunks_per_s": round(stored / seconds, 1),
            }  # fmt: skip
            print(f"{label:<6} {n} files, {documents} documents, {stored} chunks in {seconds:.1f} s: "
                  f"{n / seconds:.2f} files/s, {stored / seconds:.1f} chunks/s", flush=True)  # fmt: skip
            httpx.delete(f"{url}/v1/rag/collections/{collection}", timeout=60)
    model = results["runs"].get("model", {}).get("chunks_per_s")
    if model:
        for label, row in results["runs"].items():
            if label != "model":
                row["share_of_model_rate"] = round(row["chunks_per_s"] / model, 2)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
