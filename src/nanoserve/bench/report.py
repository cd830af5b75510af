"""Present benchmark runs: vLLM-compatible result dicts, the saved JSON, a text block, a table.

Each result dict carries the keys of ``vllm bench serve --save-result`` (``request_throughput``,
``output_throughput``, ``mean_ttft_ms``, ``p99_itl_ms``, ...) so one file of either tool reads the
same; nanoserve adds a few of its own (``truncated``, ``endpoint``, ``input_len`` ...). The saved
file holds the sweep: ``{"tool", "config", "results": [one dict per concurrency]}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from nanoserve import __version__
from nanoserve.bench.metrics import EmbeddingMetrics, GenerationMetrics, Stats, percentile_word
from nanoserve.bench.runner import BenchConfig, RunResult

# vLLM's backend names for the three endpoints.
BACKENDS = {"chat": "openai-chat", "completions": "openai", "embeddings": "openai-embeddings"}
MAX_ERRORS_SHOWN = 5


def config_dict(config: BenchConfig) -> dict[str, Any]:
    return {
        "base_url": config.base_url,
        "endpoint": config.endpoint,
        "model": config.model,
        "num_prompts": config.num_prompts,
        "max_concurrency": list(config.concurrencies),
        "request_rate": _rate_value(config.request_rate),
        "input_len": config.input_len,
        "output_len": config.output_len if config.generation else None,
        "batch_size": config.batch_size if not config.generation else None,
        "ignore_eos": config.ignore_eos,
        "temperature": config.temperature,
        "goodput": dict(config.slos) or None,
        "seed": config.seed,
    }


def result_dict(config: BenchConfig, run: RunResult, *, date: str | None = None) -> dict[str, Any]:
    """One run as ``vllm bench serve`` would save it (plus nanoserve's extras)."""
    m = run.metrics
    out: dict[str, Any] = {
        "date": date or datetime.now().strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": BACKENDS[config.endpoint],
        "backend": BACKENDS[config.endpoint],
        "label": None,
        "model_id": config.model,
        "tokenizer_id": None,
        "num_prompts": config.num_prompts,
        "request_rate": _rate_value(config.request_rate),
        "burstiness": 1.0,
        "max_concurrency": run.max_concurrency,
        "duration": m.duration,
        "completed": m.completed,
        "failed": m.failed,
        "total_input_tokens": m.total_input_tokens,
    }
    if isinstance(m, GenerationMetrics):
        out |= {
            "total_output_tokens": m.total_output_tokens,
            "request_throughput": m.request_throughput,
            "request_goodput": m.request_goodput,
            "output_throughput": m.output_throughput,
            "total_token_throughput": m.total_token_throughput,
            "max_output_tokens_per_s": m.max_output_tokens_per_s,
            "max_concurrent_requests": m.max_concurrent_requests,
            **m.ttft.flat("ttft"),
            **m.tpot.flat("tpot"),
            **m.itl.flat("itl"),
            **m.e2el.flat("e2el"),
            "truncated": m.truncated,
            "usage_reported": run.usage_reported,
            "input_len": config.input_len,
            "output_len": config.output_len,
            "ignore_eos": config.ignore_eos,
            "goodput_slos_ms": dict(config.slos) or None,
        }
    else:
        out |= {
            "total_input_sequences": m.total_input_sequences,
            "request_throughput": m.request_throughput,
            "input_sequence_throughput": m.input_sequence_throughput,
            "total_token_throughput": m.total_token_throughput,
            "max_concurrent_requests": m.max_concurrent_requests,
            **m.e2el.flat("e2el"),
            "input_len": config.input_len,
            "batch_size": config.batch_size,
        }
    out["endpoint"] = config.endpoint
    out["errors"] = dict(run.errors.most_common(MAX_ERRORS_SHOWN))
    return out


def sweep_document(config: BenchConfig, runs: Sequence[RunResult]) -> dict[str, Any]:
    date = datetime.now().strftime("%Y%m%d-%H%M%S")
    return {
        "tool": f"nanoserve bench {__version__}",
        "config": config_dict(config),
        "results": [result_dict(config, run, date=date) for run in runs],
    }


def save_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def format_run(config: BenchConfig, run: RunResult) -> str:
    """A block in the layout of vLLM's "Serving Benchmark Result"."""
    m = run.metrics
    lines = [" Serving Benchmark Result ".center(50, "=")]

    def row(label: str, value: object) -> None:
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"{label:<40} {text}")

    row("Successful requests:", m.completed)
    row("Failed requests:", m.failed)
    if isinstance(m, GenerationMetrics):
        row("Truncated streams:", m.truncated)
    row("Maximum request concurrency:", run.max_concurrency or "unlimited")
    if not math.isinf(config.request_rate):
        row("Request rate configured (RPS):", config.request_rate)
    row("Benchmark duration (s):", m.duration)
    row("Total input tokens:", m.total_input_tokens)
    row("Request throughput (req/s):", m.request_throughput)
    if isinstance(m, EmbeddingMetrics):
        row("Total input sequences:", m.total_input_sequences)
        row("Input throughput (inputs/s):", m.input_sequence_throughput)
        row("Total token throughput (tok/s):", m.total_token_throughput)
        _stats_rows(lines, "E2EL", "End-to-end Latency", m.e2el)
    else:
        row("Total generated tokens:", m.total_output_tokens)
        if m.request_goodput is not None:
            row("Request goodput (req/s):", m.request_goodput)
        row("Output token throughput (tok/s):", m.output_throughput)
        row("Peak output token throughput (tok/s):", m.max_output_tokens_per_s)
        row("Peak concurrent requests:", m.max_concurrent_requests)
        row("Total token throughput (tok/s):", m.total_token_throughput)
        _stats_rows(lines, "TTFT", "Time to First Token", m.ttft)
        _stats_rows(lines, "TPOT", "Time per Output Token (excl. 1st token)", m.tpot)
        _stats_rows(lines, "ITL", "Inter-token Latency", m.itl)
        _stats_rows(lines, "E2EL", "End-to-end Latency", m.e2el)
    lines.append("=" * 50)
    lines.extend(_notes(run))
    return "\n".join(lines)


def _stats_rows(lines: list[str], short: str, header: str, stats: Stats) -> None:
    lines.append(f" {header} ".center(50, "-"))
    lines.append(f"{f'Mean {short} (ms):':<40} {stats.mean:.2f}")
    lines.append(f"{f'Median {short} (ms):':<40} {stats.median:.2f}")
    for p, value in stats.percentiles:
        lines.append(f"{f'P{percentile_word(p)} {short} (ms):':<40} {value:.2f}")


def _notes(run: RunResult) -> list[str]:
    notes = []
    if isinstance(run.metrics, GenerationMetrics) and run.metrics.completed and not run.usage_reported:
        notes.append("note: the server reported no usage; output tokens are counted as token chunks")
    for message, count in run.errors.most_common(MAX_ERRORS_SHOWN):
        notes.append(f"error x{count}: {message}")
    return notes


def format_table(config: BenchConfig, runs: Sequence[RunResult]) -> str:
    """One row per concurrency: throughput, latency (median / p99) and failures."""
    p = config.percentiles[-1]
    pw = percentile_word(p)
    if config.generation:
        header = [
            "conc",
            "req/s",
            "out tok/s",
            "tot tok/s",
            "goodput",
            f"TTFT med/p{pw} ms",
            f"TPOT med/p{pw} ms",
            "ITL med ms",
            f"E2EL med/p{pw} ms",
            "peak",
            "fail",
            "trunc",
        ]
    else:
        header = ["conc", "req/s", "inputs/s", "tok/s", f"E2EL med/p{pw} ms", "peak", "fail"]
    rows = [header]
    for run in runs:
        m = run.metrics
        conc = str(run.max_concurrency or "inf")
        if isinstance(m, GenerationMetrics):
            goodput = "-" if m.request_goodput is None else f"{m.request_goodput:.2f}"
            rows.append(
                [
                    conc,
                    f"{m.request_throughput:.2f}",
                    f"{m.output_throughput:.1f}",
                    f"{m.total_token_throughput:.1f}",
                    goodput,
                    _pair(m.ttft, p),
                    _pair(m.tpot, p),
                    f"{m.itl.median:.1f}",
                    _pair(m.e2el, p),
                    str(m.max_concurrent_requests),
                    str(m.failed),
                    str(m.truncated),
                ]
            )
        else:
            rows.append(
                [
                    conc,
                    f"{m.request_throughput:.2f}",
                    f"{m.input_sequence_throughput:.1f}",
                    f"{m.total_token_throughput:.1f}",
                    _pair(m.e2el, p),
                    str(m.max_concurrent_requests),
                    str(m.failed),
                ]
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for run in runs:
        lines.extend(f"concurrency {run.max_concurrency or 'inf'}: {note}" for note in _notes(run))
    return "\n".join(lines)


def _pair(stats: Stats, p: float) -> str:
    return f"{stats.median:.1f}/{stats.percentile(p):.1f}"


def _rate_value(rate: float) -> float | str:
    return "inf" if math.isinf(rate) else rate
