"""What one RAG answer costs the generation model, with and without the stop at a blank line.

For the first N in-scope questions of a questions file: the pipeline's own retrieval
(/v1/rag/search, ``rag.top_k`` chunks) and prompt (``pipeline.build_messages``, ``rag.context_chars``),
then the same chat request twice, alternating which goes first: ``max_tokens`` as configured
without ``stop`` (before) and with ``rag.stop`` (after). Per request: prompt and completion tokens,
finish reason, wall time and the chat worker's CPU time (``--worker-pid``: utime + stime from
/proc, which counts the work and not the waiting, so it holds better than wall time on a loaded
machine). Prints the totals and the after/before ratios; ``-o`` writes every request as JSON.

    python benchmarks/rag/generation_cost.py URL COLLECTION QUESTIONS.jsonl --worker-pid PID [--n 4] [-o OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import httpx

from nanoserve.rag.config import RagConfig
from nanoserve.rag.eval import load_questions
from nanoserve.rag.pipeline import build_messages
from nanoserve.rag.store.base import StoredChunk


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("collection")
    parser.add_argument("questions", type=Path)
    parser.add_argument("--worker-pid", type=int, required=True, help="the chat model's worker process")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    cfg = RagConfig()
    rows = []
    with httpx.Client(base_url=args.url, timeout=1800) as http:
        docs = http.get(f"/v1/rag/collections/{args.collection}").json()["documents_list"]
        titles = {d["name"]: d.get("title") or d["name"] for d in docs}
        questions = [q for q in load_questions(args.questions) if q.in_scope][: args.n]
        for i, q in enumerate(questions):
            found = http.post(
                "/v1/rag/search", json={"collection": args.collection, "query": q.query, "top_k": cfg.top_k}
            ).json()["results"]
            chunks = [
                StoredChunk(r["chunk_id"], 0, r["document"], r["source"], titles.get(r["document"], ""),
                            r["section"], 0, r["text"], 0, 0, 0.0, 0.0)
                for r in found
            ]  # fmt: skip
            messages = build_messages(q.query, chunks, cfg.context_chars)
            variants = [("before", {}), ("after", {"stop": cfg.stop})]
            for name, extra in variants if i % 2 == 0 else variants[::-1]:
                body = {"model": cfg.generation_model, "messages": messages, "max_tokens": cfg.max_tokens,
                        "temperature": cfg.temperature, **extra}  # fmt: skip
                cpu, wall = cpu_seconds(args.worker_pid), time.perf_counter()
                r = http.post("/v1/chat/completions", json=body).json()
                row = {
                    "query": q.query, "variant": name, "prompt_tokens": r["usage"]["prompt_tokens"],
                    "completion_tokens": r["usage"]["completion_tokens"],
                    "finish_reason": r["choices"][0]["finish_reason"],
                    "wall_s": round(time.perf_counter() - wall, 2),
                    "worker_cpu_s": round(cpu_seconds(args.worker_pid) - cpu, 2),
                    "text": r["choices"][0]["message"]["content"],
                }  # fmt: skip
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "text"}), flush=True)
    totals = {
        name: {
            key: round(sum(r[key] for r in rows if r["variant"] == name), 2)
            for key in ("prompt_tokens", "completion_tokens", "wall_s", "worker_cpu_s")
        }
        for name in ("before", "after")
    }
    ratios = {
        key: round(totals["after"][key] / totals["before"][key], 3) if totals["before"][key] else None
        for key in totals["before"]
    }
    print(json.dumps({"questions": len(rows) // 2, "totals": totals, "after/before": ratios}, indent=1))
    if args.output:
        args.output.write_text(
            json.dumps({"totals": totals, "after/before": ratios, "rows": rows}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
