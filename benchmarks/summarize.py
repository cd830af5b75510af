"""Turn the JSON files of ``run.sh`` into summary.md (tables, issue-4 targets) and two plots.

    python benchmarks/summarize.py benchmarks/results

Reads what is there and says what is missing; a target whose inputs are missing is "not run".
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUANTS = ("q4_1", "q8_0", "q4_0")
SETUPS = {  # file stem -> label, for the Q8_0 comparison
    "gateway-q8_0": "(a) nanoserve gateway",
    "gateway-q8_0-short": "(a) gateway, 13-token prompts, no template",
    "worker-q8_0": "(b) nanoserve worker alone",
    "llamacpp-server-q8_0": "(c) llama_cpp.server",
}
CEILING_LABEL = "(d) ceiling: batched llama_decode loop"


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not run


class Results:
    def __init__(self, directory: Path):
        self.dir = directory
        self.missing: list[str] = []

    def load(self, stem: str) -> Any:
        path = self.dir / f"{stem}.json"
        if not path.exists():
            self.missing.append(path.name)
            return None
        return json.loads(path.read_text())

    def sweep(self, stem: str) -> dict[int, dict[str, Any]]:
        """concurrency -> vLLM-style result dict of one ``nanoserve bench`` sweep."""
        doc = self.load(stem)
        return {} if doc is None else {r["max_concurrency"]: r for r in doc["results"]}

    def best_sweep(self, stem: str, runs: int = 3) -> dict[int, dict[str, Any]]:
        """Per concurrency, the run with the highest output throughput of ``stem-1`` .. ``stem-N``."""
        best: dict[int, dict[str, Any]] = {}
        for i in range(1, runs + 1):
            for conc, r in self.sweep(f"{stem}-{i}").items():
                if conc not in best or r["output_throughput"] > best[conc]["output_throughput"]:
                    best[conc] = r
        return best

    def runs(self, stem: str) -> dict[int, dict[str, Any]]:
        """One sweep's results, or the best of its repeats (``stem-1.json`` ...)."""
        return self.sweep(stem) if (self.dir / f"{stem}.json").exists() else self.best_sweep(stem)

    def ceiling(self, quant: str) -> dict[int, float]:
        doc = self.load(f"ceiling-{quant}")
        return {} if doc is None else {r["batch"]: r["tokens_per_second"] for r in doc["results"]}


def decode_rate(run: dict[str, Any]) -> float:
    """One stream's decode tokens/s: 1 / median TPOT."""
    return 1000 / run["median_tpot_ms"] if run.get("median_tpot_ms") else 0.0


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def q8_table(res: Results) -> list[str]:
    ceiling = res.ceiling("q8_0")
    rows = []
    for stem, label in SETUPS.items():
        for conc, r in sorted(res.runs(stem).items()):
            cut = r["failed"] + r["truncated"]
            rows.append(
                [
                    label,
                    str(conc),
                    fmt(r["output_throughput"]),
                    fmt(r["output_throughput"] / ceiling[conc], 2) if conc in ceiling else "–",
                    fmt(r["median_ttft_ms"], 0),
                    fmt(r["median_tpot_ms"]),
                    fmt(r["median_e2el_ms"], 0),
                    f"{r['completed']}/{r['num_prompts']}",
                    f"{r['failed']} + {r['truncated']}" if cut else "0",
                ]
            )
    for batch, tps in sorted(ceiling.items()):
        rows.append(
            [CEILING_LABEL, str(batch), fmt(tps), "1.00", "–", fmt(1000 * batch / tps), "–", "–", "–"]
        )
    header = [
        "setup", "conc", "out tok/s", "÷ ceiling", "TTFT p50 ms", "TPOT p50 ms", "E2EL p50 ms",
        "completed", "cut (failed + truncated)",
    ]  # fmt: skip
    return md_table(header, rows)


def quant_table(res: Results) -> list[str]:
    rows = []
    for quant in QUANTS:
        sweep, ceiling = res.sweep(f"gateway-{quant}"), res.ceiling(quant)
        for conc in sorted(set(sweep) | set(ceiling)):
            r = sweep.get(conc)
            out = r["output_throughput"] if r else None
            ceil = ceiling.get(conc)
            rows.append(
                [
                    quant.upper(),
                    str(conc),
                    fmt(out),
                    fmt(ceil),
                    fmt(out / ceil, 2) if out and ceil else "–",
                    fmt(decode_rate(r)) if r else "–",
                    str(r["failed"] + r["truncated"]) if r else "–",
                ]
            )
    header = ["weights", "conc", "gateway out tok/s", "ceiling tok/s", "ratio", "1/TPOT p50", "cut"]
    return md_table(header, rows)


def targets(res: Results) -> list[Target]:
    out: list[Target] = []
    gw, ceiling = res.sweep("gateway-q8_0"), res.ceiling("q8_0")
    short = res.best_sweep("gateway-q8_0-short")
    if 8 in short and 8 in ceiling:
        r = short[8]
        ratio = r["output_throughput"] / ceiling[8]
        cut = r["failed"] + r["truncated"]
        measured = (
            f"13-token prompts (the ceiling's workload, best of 3): {r['output_throughput']:.1f} / {ceiling[8]:.1f} "
            f"tok/s = {ratio:.2f}×, peak {r.get('max_output_tokens_per_s', 0):.0f} tok/s; "
            f"{r['truncated']} truncated, {r['failed']} failed"
        )
        if 8 in gw:
            chat = gw[8]["output_throughput"]
            measured += (
                f". Chat, 64-token prompts (prefill included): {chat:.1f} tok/s = {chat / ceiling[8]:.2f}×"
            )
        out.append(
            Target(
                "8 concurrent streams (Q8_0)",
                "aggregate output tok/s ≥ 0.8 × ceiling at B=8, zero truncated streams",
                measured,
                ratio >= 0.8 and cut == 0,
            )
        )
    else:
        out.append(Target("8 concurrent streams (Q8_0)", "≥ 0.8 × ceiling at B=8", "not run", None))
    hl = res.load("highlevel-q8_0")
    if 1 in short and hl:
        ours, theirs = decode_rate(short[1]), hl["best_tokens_per_second"]
        measured = (
            f"gateway {ours:.1f} tok/s (1/TPOT p50, 13-token prompts, best of 3) vs high-level loop "
            f"{theirs:.1f} tok/s (best of {len(hl['tokens_per_second'])})"
        )
        if 1 in gw:
            measured += f"; chat, 64-token prompts: {decode_rate(gw[1]):.1f} tok/s (one run)"
        out.append(
            Target(
                "1 stream (Q8_0)",
                "≥ llama-cpp-python high-level create_completion(stream=True) loop",
                measured,
                ours >= theirs,
            )
        )
    else:
        out.append(Target("1 stream (Q8_0)", "≥ high-level loop", "not run", None))
    prefix = res.load("prefix-cache")
    if prefix:
        out.append(
            Target(
                "repeated ~300-token system prompt",
                "TTFT of the second request ≥ 5× lower",
                f"{prefix['median_first_ttft_ms']:.0f} ms → {prefix['median_second_ttft_ms']:.0f} ms: "
                f"{prefix['median_speedup']:.1f}× (median of {len(prefix['pairs'])} pairs)",
                prefix["median_speedup"] >= 5,
            )
        )
    else:
        out.append(Target("repeated system prompt", "≥ 5×", "not run", None))
    emb = res.sweep("embeddings")
    if 1 in emb and 32 in emb:
        one, many = emb[1]["input_sequence_throughput"], emb[32]["input_sequence_throughput"]
        measured = f"{one:.0f} → {many:.0f} inputs/s: {many / one:.1f}×"
        ceiling_doc = res.load("embed-ceiling")
        if ceiling_doc:
            rates = {r["batch"]: r["inputs_per_second"] for r in ceiling_doc["results"]}
            if 1 in rates and 32 in rates:
                measured += (
                    f" (sentence-transformers alone, no server: B=1 {rates[1]:.0f}, B=32 {rates[32]:.0f} "
                    f"inputs/s = {rates[32] / rates[1]:.1f}×, the most batching can gain here)"
                )
        out.append(
            Target(
                "embeddings",
                "32 concurrent one-text requests ≥ 3× the throughput of one at a time",
                measured,
                many / one >= 3,
            )
        )
    else:
        out.append(Target("embeddings", "≥ 3×", "not run", None))
    overhead = res.load("overhead")
    if overhead:
        out.append(
            Target(
                "gateway overhead (mock engine)",
                "p50 gateway − p50 worker < 1 ms (sequential, non-streaming, 1 token)",
                f"{overhead['gateway']['p50_ms']:.2f} − {overhead['worker']['p50_ms']:.2f} = "
                f"{overhead['overhead_p50_ms']:.2f} ms",
                overhead["overhead_p50_ms"] < 1.0,
            )
        )
    else:
        out.append(Target("gateway overhead", "< 1 ms", "not run", None))
    return out


def machine_lines(res: Results) -> list[str]:
    machine = res.load("machine") or {}
    lines = [
        (
            f"Machine: {machine.get('nproc', '?')} CPUs ({machine.get('cpu_model', '?')}), "
            f"{machine.get('mem_total_gib', '?')} GiB; llama-cpp-python {machine.get('llama_cpp_python', '?')}, "
            f"Python {machine.get('python', '?')}; {machine.get('threads', '?')} threads everywhere; "
            f"OMP_WAIT_POLICY={machine.get('OMP_WAIT_POLICY') or 'unset'}."
        ),
        "",
    ]
    load_file = res.dir / "load.jsonl"
    if load_file.exists():
        phases = [json.loads(line) for line in load_file.read_text().splitlines() if line.strip()]
        lines += ["Load average (1, 5, 15 min) as each phase began:", ""]
        lines += md_table(
            ["phase", "UTC", "load average"], [[p["phase"], p["utc"], p["loadavg"]] for p in phases]
        )
    return lines


def plot(res: Results) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for stem, label in SETUPS.items():
        sweep = res.runs(stem)
        if sweep:
            xs = sorted(sweep)
            ax.plot(xs, [sweep[x]["output_throughput"] for x in xs], marker="o", label=label)
    ceiling = res.ceiling("q8_0")
    if ceiling:
        xs = sorted(ceiling)
        ax.plot(xs, [ceiling[x] for x in xs], marker="s", linestyle="--", color="black", label=CEILING_LABEL)
    ax.set(xlabel="concurrent streams", ylabel="output tokens/s", title="SmolLM2-135M Q8_0, 2 threads")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(res.dir / "throughput-q8_0.png", dpi=110)
    plt.close(fig)
    written.append("throughput-q8_0.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for quant, color in zip(QUANTS, ("tab:blue", "tab:orange", "tab:green")):
        sweep, ceil = res.sweep(f"gateway-{quant}"), res.ceiling(quant)
        if sweep:
            xs = sorted(sweep)
            ax.plot(
                xs,
                [sweep[x]["output_throughput"] for x in xs],
                marker="o",
                color=color,
                label=f"gateway {quant}",
            )
        if ceil:
            xs = sorted(ceil)
            ax.plot(
                xs, [ceil[x] for x in xs], marker="s", linestyle="--", color=color, label=f"ceiling {quant}"
            )
    ax.set(xlabel="concurrent streams", ylabel="output tokens/s", title="Weights: gateway vs ceiling")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(res.dir / "quantizations.png", dpi=110)
    plt.close(fig)
    written.append("quantizations.png")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="?", default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    res = Results(args.results)

    lines = ["# Benchmark results", ""]
    lines += machine_lines(res) + [""]
    lines += ["## Issue 4 targets", ""]
    lines += md_table(
        ["target", "goal", "measured", "met"],
        [
            [t.name, t.goal, t.measured, {True: "yes", False: "**no**", None: "not run"}[t.met]]
            for t in targets(res)
        ],
    )
    plain = res.load("llamacpp-server-plain")
    lines += ["", "## Q8_0: gateway, worker, llama_cpp.server, ceiling", ""]
    if plain:
        lines += [
            (
                f"`{plain['command']}` as shipped: first chat request → HTTP {plain['http_status'] or 'none'}, "
                f"process {plain['process']} (139 = killed by SIGSEGV). Row (c) is the same server with "
                "`use_extra_bufts = false`, as every other contender here (peers/llamacpp_server.py)."
            ),
            "",
        ]
    lines += q8_table(res)
    lines += ["", "## Weights: Q4_1 (source, `quantize: keep`), Q8_0 (default), Q4_0", ""]
    lines += quant_table(res)
    plots = plot(res)
    lines += [""] + [f"![{name}]({name})" for name in plots]
    if res.missing:
        lines += ["", "Missing: " + ", ".join(sorted(set(res.missing)))]
    (args.results / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
