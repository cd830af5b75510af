"""Plot a sweep: throughput and latency versus concurrency (matplotlib, Agg backend).

matplotlib is the optional extra ``nanoserve[bench]``; it is imported only when a plot is drawn.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nanoserve.bench.metrics import EmbeddingMetrics, GenerationMetrics, Stats, percentile_word
from nanoserve.bench.runner import RunResult
from nanoserve.errors import UnsupportedFeature


def require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise UnsupportedFeature("plotting needs matplotlib: pip install 'nanoserve[bench]'")


def _x(run: RunResult) -> float:
    """A run's place on the x axis: its concurrency limit, else the peak it reached."""
    return float(run.max_concurrency or run.metrics.max_concurrent_requests)


def plot_sweep(runs: Sequence[RunResult], path: Path, *, title: str, percentile: float = 99.0) -> None:
    """Two panels side by side: throughput (left) and latency median/p99 (right) per concurrency."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    runs = sorted(runs, key=_x)
    xs = [_x(r) for r in runs]
    pw = percentile_word(percentile)
    gen = [r.metrics for r in runs if isinstance(r.metrics, GenerationMetrics)]
    emb = [r.metrics for r in runs if isinstance(r.metrics, EmbeddingMetrics)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    try:
        if gen:
            _line(left, xs, [m.output_throughput for m in gen], "output tok/s")
            for x, m in zip(xs, gen):
                left.annotate(
                    f"{m.request_throughput:.2f} req/s",
                    (x, m.output_throughput),
                    fontsize="x-small",
                    textcoords="offset points",
                    xytext=(4, -10),
                )
            left.set_ylabel("output tokens/s")
            for name, color in (("ttft", "tab:blue"), ("tpot", "tab:orange"), ("e2el", "tab:green")):
                stats: list[Stats] = [getattr(m, name) for m in gen]
                _line(right, xs, [s.median for s in stats], f"{name.upper()} median", color=color)
                _line(
                    right,
                    xs,
                    [s.percentile(percentile) for s in stats],
                    f"{name.upper()} p{pw}",
                    style="--",
                    color=color,
                )
            right.set_yscale("log")
        else:
            _line(left, xs, [m.input_sequence_throughput for m in emb], "inputs/s")
            left.set_ylabel("inputs/s")
            _line(right, xs, [m.e2el.median for m in emb], "latency median", color="tab:green")
            _line(
                right,
                xs,
                [m.e2el.percentile(percentile) for m in emb],
                f"latency p{pw}",
                style="--",
                color="tab:green",
            )
        left.set_title("Throughput")
        right.set_title("Latency")
        right.set_ylabel("ms")
        right.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        right.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
        for ax in (left, right):
            ax.legend(loc="best", fontsize="small")
            ax.set_xlabel("max concurrency")
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.grid(True, alpha=0.3)
        fig.suptitle(title)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def _line(
    ax: Any, xs: list[float], ys: list[float], label: str, *, style: str = "-", color: str | None = None
) -> None:
    ax.plot(xs, ys, style, marker="o", label=label, color=color)


def _minor_label(value: float, _: object) -> str:
    """Label the 2s and 5s between the powers of ten of a log axis, in plain numbers."""
    return f"{value:g}" if f"{value:e}"[0] in "25" else ""
