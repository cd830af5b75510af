"""``nanoserve bench``: load-test an OpenAI-compatible server and report vLLM's figures."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from nanoserve.bench.runner import Progress, ProgressFactory


def _concurrencies(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int | None, ...]:
    if value is None or not value.strip():
        return (None,)
    try:
        levels = tuple(int(part) for part in value.replace(" ", "").split(",") if part)
    except ValueError:
        raise click.BadParameter("expected a comma list of integers, e.g. 1,2,4,8") from None
    if not levels or any(level < 1 for level in levels):
        raise click.BadParameter("concurrencies must be >= 1")
    return tuple(dict.fromkeys(levels))  # de-duplicated, order kept


def _slos(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, float]:
    from nanoserve.bench.metrics import parse_slos

    pairs = [pair for item in value for pair in item.replace(",", " ").split()]
    try:
        return parse_slos(pairs)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _percentiles(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        ps = tuple(float(p) for p in value.split(",") if p.strip())
    except ValueError:
        raise click.BadParameter("expected a comma list of numbers, e.g. 50,90,99") from None
    if not ps or any(not 0 < p <= 100 for p in ps):
        raise click.BadParameter("percentiles must be in (0, 100]")
    return ps


def _positive_rate(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not value > 0:  # also rejects nan
        raise click.BadParameter("must be > 0 (inf sends every request at once)")
    return value


@click.command()
@click.option(
    "--base-url", default="http://127.0.0.1:8000", show_default=True, help="Server URL (with or without /v1)."
)
@click.option("--model", required=True, help="Model name sent in every request.")
@click.option(
    "--endpoint",
    type=click.Choice(["chat", "completions", "embeddings"]),
    default="chat",
    show_default=True,
    help="API to load: /v1/chat/completions, /v1/completions or /v1/embeddings.",
)
@click.option(
    "--num-prompts", type=click.IntRange(min=1), default=100, show_default=True, help="Requests per run."
)
@click.option(
    "--max-concurrency",
    "concurrencies",
    callback=_concurrencies,
    default=None,
    help="Requests in flight at most; a comma list (1,2,4,8) is a sweep, one run each. [default: no limit]",
)
@click.option(
    "--request-rate",
    type=float,
    default=math.inf,
    callback=_positive_rate,
    show_default=True,
    help="Requests per second, Poisson arrivals; inf sends all at once.",
)
@click.option(
    "--input-len",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Prompt length in words (about one token each; the report uses the server's count).",
)
@click.option(
    "--output-len",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="max_tokens of each generation request.",
)
@click.option("--ignore-eos", is_flag=True, help="Ask the server to generate all --output-len tokens.")
@click.option(
    "--temperature", type=float, default=None, help="Sampling temperature (server default if unset)."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Embeddings: inputs per request.",
)
@click.option(
    "--goodput",
    multiple=True,
    callback=_slos,
    metavar="NAME:MS",
    help="SLO for goodput, e.g. --goodput 'ttft:500 tpot:50 e2el:5000' (repeatable).",
)
@click.option(
    "--metric-percentiles",
    "percentiles",
    default="99",
    callback=_percentiles,
    show_default=True,
    help="Comma list of percentiles to report.",
)
@click.option(
    "--save-result",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every run's results (vLLM's keys) to this JSON file.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Draw throughput and latency versus concurrency to this PNG (needs nanoserve[bench]).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of prompts and arrivals.")
@click.option(
    "--api-key",
    envvar=["NANOSERVE_API_KEY", "OPENAI_API_KEY"],
    default=None,
    help="Bearer token [env: NANOSERVE_API_KEY or OPENAI_API_KEY].",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds a request may wait for a byte before it fails.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal]."
)
def bench(
    base_url: str,
    model: str,
    endpoint: str,
    num_prompts: int,
    concurrencies: tuple[int | None, ...],
    request_rate: float,
    input_len: int,
    output_len: int,
    ignore_eos: bool,
    temperature: float | None,
    batch_size: int,
    goodput: dict[str, float],
    percentiles: tuple[float, ...],
    save_result: Path | None,
    plot: Path | None,
    seed: int,
    api_key: str | None,
    request_timeout: float,
    progress: bool | None,
) -> None:
    """Benchmark an OpenAI-compatible server with the figures of `vllm bench serve`.

    Per run: TTFT, TPOT, ITL and end-to-end latency (mean, median, std, percentiles), request and
    token throughput, goodput against --goodput SLOs, peak concurrency, failed and truncated
    streams. Prompts are random words, deterministic for a --seed.

    \b
    Examples:
      nanoserve bench --model smollm2:135m --num-prompts 32 --max-concurrency 1,2,4,8 \\
          --output-len 64 --ignore-eos --save-result sweep.json --plot sweep.png
      nanoserve bench --model all-minilm:l6-v2 --endpoint embeddings --batch-size 8
    """
    from nanoserve.bench.plot import plot_sweep, require_matplotlib
    from nanoserve.bench.report import format_run, format_table, save_json, sweep_document
    from nanoserve.bench.runner import BenchConfig, BenchRunner, RunResult
    from nanoserve.errors import NanoserveError

    if endpoint == "embeddings" and goodput:
        raise click.BadParameter("goodput applies to generation endpoints", param_hint="--goodput")
    try:
        config = BenchConfig(
            base_url=base_url,
            model=model,
            endpoint=endpoint,  # type: ignore[arg-type]
            num_prompts=num_prompts,
            concurrencies=concurrencies,
            request_rate=request_rate,
            input_len=input_len,
            output_len=output_len,
            batch_size=batch_size,
            ignore_eos=ignore_eos,
            temperature=temperature,
            slos=goodput,
            percentiles=percentiles,
            seed=seed,
            api_key=api_key,
            request_timeout=request_timeout,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None

    sweep = len(concurrencies) > 1

    def print_run(run: RunResult) -> None:
        click.echo(format_run(config, run))

    try:
        if plot is not None:
            require_matplotlib()
        runner = BenchRunner(
            config, progress=_progress_factory(progress), on_run=None if sweep else print_run
        )
        runs = asyncio.run(runner.run())
        if sweep:
            click.echo(format_table(config, runs))
        if save_result is not None:
            save_json(save_result, sweep_document(config, runs))
            click.echo(f"results saved to {save_result}", err=True)
        if plot is not None:
            plot_sweep(
                runs,
                plot,
                title=f"{model} · /{endpoint} · {num_prompts} prompts per run",
                percentile=percentiles[-1],
            )
            click.echo(f"plot saved to {plot}", err=True)
    except NanoserveError as exc:
        raise click.ClickException(exc.message) from None
    except OSError as exc:  # writing a result or plot file
        raise click.ClickException(str(exc)) from None
    if any(run.metrics.completed == 0 for run in runs):
        raise click.ClickException("every request of a run failed (see the errors above)")


def _progress_factory(enabled: bool | None) -> ProgressFactory:
    from tqdm import tqdm

    disable = None if enabled is None else not enabled  # None: tqdm shows it only on a terminal

    def factory(description: str, total: int) -> Progress:
        bar: Progress = tqdm(
            total=total, desc=description, unit="req", file=sys.stderr, disable=disable, leave=False
        )
        return bar

    return factory
