"""CPU time per streamed token, per thread, of running server processes (a worker, a gateway).

Noise cannot fake this one: instead of wall-clock throughput (which depends on what else runs on
the machine) it reads each thread's CPU time from ``/proc/<pid>/task/<tid>/schedstat``
(nanoseconds on CPU; ``stat``'s utime+stime ticks where schedstat is missing) before and after a
fixed streaming load, and divides by the tokens the load generated (the servers' ``usage``).

    python benchmarks/cpu_per_token.py --url http://127.0.0.1:PORT --pid WORKER_PID \\
        [--pid GATEWAY_PID --children] --concurrency 8 --requests 32 --output-len 64 --rounds 3

The load: ``--requests`` streaming chat completions of distinct ``--input-len``-word prompts
(``nanoserve.bench.workload``'s words, so no prompt is cached), exactly ``--output-len`` tokens
each (``ignore_eos``, temperature 0), ``--concurrency`` at a time; an unmeasured round of
``--warmup`` requests first. ``--children`` adds every descendant of the given pids (a gateway's workers).

Threads are reported one by one and in groups: the main thread (an asyncio server's event loop),
the llama.cpp decode thread (``llamacpp-decode``: the lowest tid of that name; threads it starts,
such as OpenMP's, inherit the name and are the ``llama.cpp compute`` group), other threads by name.
A worker's ``/info`` (``--info-url``) adds the decode thread's own split of its CPU time between
``llama_decode`` and the Python around it (``decode_*_cpu_seconds_total`` in the engine stats).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from nanoserve.bench.workload import random_text

TICK = os.sysconf("SC_CLK_TCK")
DECODE_THREAD = "llamacpp-decode"


@dataclass(frozen=True, slots=True)
class ThreadTime:
    pid: int
    tid: int
    comm: str
    ns: int  # on-CPU time, user and system
    sys_ns: int  # of which in the kernel (stat's stime: tick resolution)


def _thread_ns(task: Path) -> tuple[int, int]:
    """On-CPU nanoseconds, and of them in the kernel."""
    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = (int(fields[11]) * 1_000_000_000 // TICK, int(fields[12]) * 1_000_000_000 // TICK)
    try:
        return int((task / "schedstat").read_text().split()[0]), stime
    except (OSError, ValueError, IndexError):
        return utime + stime, stime


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def snapshot(pids: Sequence[int]) -> dict[tuple[int, int], ThreadTime]:
    out: dict[tuple[int, int], ThreadTime] = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                comm = (task / "comm").read_text().strip()
                ns, sys_ns = _thread_ns(task)
            except OSError:  # the thread ended meanwhile
                continue
            tid = int(task.name)
            out[(pid, tid)] = ThreadTime(pid, tid, comm, ns, sys_ns)
    return out


def process_ns(pid: int) -> int:
    """The whole process, threads that ended included (``/proc/<pid>/stat``, tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // TICK


def group_of(thread: ThreadTime, decode_tid: dict[int, int]) -> str:
    if thread.tid == thread.pid:
        return "main thread (event loop)"
    if thread.comm == DECODE_THREAD:
        return "decode thread" if decode_tid.get(thread.pid) == thread.tid else "llama.cpp compute"
    return f"other: {thread.comm}"


# -- the load ----------------------------------------------------------------------------------


async def one_request(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> int:
    """Stream one chat completion; the completion tokens of its usage."""
    tokens = 0
    async with session.post(url, json=body, headers=headers) as resp:
        if resp.status != 200:
            raise SystemExit(f"error: {resp.status} {await resp.text()}")
        async for line in resp.content:
            if line.startswith(b"data: {") and b'"usage"' in line:
                usage = json.loads(line[6:]).get("usage")
                if usage:
                    tokens = int(usage["completion_tokens"])
    return tokens


async def run_load(args: argparse.Namespace, seed: int) -> tuple[int, float]:
    rng = random.Random(seed)
    prompts = [random_text(rng, args.input_len) for _ in range(args.requests)]
    url = args.url.rstrip("/") + "/v1/chat/completions"
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limit = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=600)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def limited(prompt: str) -> int:
            body = {
                "model": args.model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": args.output_len,
                "temperature": 0,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            async with limit:
                return await one_request(session, url, body, headers)

        start = time.perf_counter()
        counts = await asyncio.gather(*(limited(p) for p in prompts))
        return sum(counts), time.perf_counter() - start


async def engine_stats(info_url: str | None) -> dict[str, Any]:
    if not info_url:
        return {}
    async with aiohttp.ClientSession() as session, session.get(info_url) as resp:
        body = await resp.json()
    return dict((body.get("engine_info") or {}).get("stats") or {})


# -- one measured round ------------------------------------------------------------------------


def measure(args: argparse.Namespace, pids: list[int], seed: int) -> dict[str, Any]:
    stats0 = asyncio.run(engine_stats(args.info_url))
    before = snapshot(pids)
    proc0 = {pid: process_ns(pid) for pid in pids}
    tokens, wall = asyncio.run(run_load(args, seed))
    proc1 = {pid: process_ns(pid) for pid in pids}
    after = snapshot(pids)
    stats1 = asyncio.run(engine_stats(args.info_url))

    decode_tid: dict[int, int] = {}
    for t in after.values():
        if t.comm == DECODE_THREAD and (t.pid not in decode_tid or t.tid < decode_tid[t.pid]):
            decode_tid[t.pid] = t.tid
    threads: list[dict[str, Any]] = []
    groups: dict[str, float] = {}
    kernel: dict[str, float] = {}
    for key, t in sorted(after.items()):
        ns = t.ns - (before[key].ns if key in before else 0)
        us = ns / 1000 / tokens
        group = f"{t.pid} {group_of(t, decode_tid)}"
        groups[group] = groups.get(group, 0.0) + us
        sys_us = (t.sys_ns - (before[key].sys_ns if key in before else 0)) / 1000 / tokens
        kernel[group] = kernel.get(group, 0.0) + sys_us
        if us >= 0.05:
            threads.append({"pid": t.pid, "tid": t.tid, "comm": t.comm, "group": group, "us_per_token": us})
    result: dict[str, Any] = {
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "groups_us_per_token": groups,
        "groups_kernel_us_per_token": kernel,
        "processes_us_per_token": {str(p): (proc1[p] - proc0[p]) / 1000 / tokens for p in pids},
        "threads": threads,
    }
    split = {
        key: (stats1[key] - stats0.get(key, 0)) * 1e6 / tokens
        for key in ("decode_python_cpu_seconds_total", "decode_native_cpu_seconds_total")
        if key in stats1
    }
    if split:
        result["decode_thread_split_us_per_token"] = split
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a gateway's or a worker's base URL")
    parser.add_argument("--pid", type=int, action="append", required=True, help="a process to measure")
    parser.add_argument("--children", action="store_true", help="measure the pids' descendants too")
    parser.add_argument("--info-url", help="a worker's /info, for the decode thread's own CPU split")
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--api-key", default=os.environ.get("NANOSERVE_API_KEY"))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=32, help="per round")
    parser.add_argument("--input-len", type=int, default=20, help="prompt words")
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (medians are reported)")
    parser.add_argument("--warmup", type=int, default=32, help="requests of the unmeasured first round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    pids = list(dict.fromkeys(args.pid))
    if args.children:
        pids += [p for pid in args.pid for p in descendants(pid) if p not in pids]
    names = {pid: Path(f"/proc/{pid}/comm").read_text().strip() for pid in pids}
    if args.warmup:
        asyncio.run(
            run_load(argparse.Namespace(**{**vars(args), "requests": args.warmup}), args.seed + 10_000)
        )
    rounds = [measure(args, pids, args.seed + r) for r in range(args.rounds)]

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    keys = sorted({k for r in rounds for k in r["groups_us_per_token"]})
    summary = {k: median([r["groups_us_per_token"].get(k, 0.0) for r in rounds]) for k in keys}
    kernel = {k: median([r["groups_kernel_us_per_token"].get(k, 0.0) for r in rounds]) for k in keys}
    procs = {
        p: median([r["processes_us_per_token"][p] for r in rounds])
        for p in rounds[0]["processes_us_per_token"]
    }
    split_keys = sorted({k for r in rounds for k in r.get("decode_thread_split_us_per_token", {})})
    split = {k: median([r["decode_thread_split_us_per_token"][k] for r in rounds]) for k in split_keys}
    rates = ", ".join(f"{r['tokens_per_s']:.1f}" for r in rounds)
    print(
        f"{args.rounds} rounds x {args.requests} requests, concurrency {args.concurrency}, "
        f"{args.output_len} tokens each; tok/s {rates}"
    )
    print("| process | thread group | CPU µs per token (median) | of it in the kernel | per round |")
    print("| --- | --- | --- | --- | --- |")
    for key in keys:
        pid, group = key.split(" ", 1)
        per_round = ", ".join(f"{r['groups_us_per_token'].get(key, 0.0):.1f}" for r in rounds)
        print(
            f"| {names.get(int(pid), pid)} {pid} | {group} | **{summary[key]:.1f}** | {kernel[key]:.0f} "
            f"| {per_round} |"
        )
    for pid, us in procs.items():
        print(f"| {names.get(int(pid), pid)} {pid} | whole process (tick resolution) | {us:.0f} | | |")
    for key, us in split.items():
        print(f"| decode thread | {key.removesuffix('_cpu_seconds_total')} (engine stats) | {us:.1f} | | |")
    if args.json:
        report = {
            "command": " ".join(["python", *sys.argv]),
            "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            "process_names": {str(p): n for p, n in names.items()},
            "median_groups_us_per_token": summary,
            "median_groups_kernel_us_per_token": kernel,
            "median_processes_us_per_token": procs,
            "median_decode_thread_split_us_per_token": split,
            "rounds": rounds,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
