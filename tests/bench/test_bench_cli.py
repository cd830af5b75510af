"""``nanoserve bench`` end to end: options, output, saved JSON and plot, errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_target import BenchTarget
from click.testing import CliRunner
from fake_openai import FakeBehaviour, FakeServer

from nanoserve.cli.main import cli

# The keys `vllm bench serve --save-result` writes for a generation run (default percentiles plus e2el).
VLLM_KEYS = {
    "date",
    "endpoint_type",
    "backend",
    "label",
    "model_id",
    "tokenizer_id",
    "num_prompts",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "duration",
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "request_goodput",
    "output_throughput",
    "total_token_throughput",
    "max_output_tokens_per_s",
    "max_concurrent_requests",
    *(
        f"{stat}_{metric}_ms"
        for stat in ("mean", "median", "std", "p99")
        for metric in ("ttft", "tpot", "itl", "e2el")
    ),
}
VLLM_EMBED_KEYS = {
    "duration",
    "completed",
    "total_input_tokens",
    "total_input_sequences",
    "request_throughput",
    "input_sequence_throughput",
    "total_token_throughput",
    "mean_e2el_ms",
    "median_e2el_ms",
    "std_e2el_ms",
    "p99_e2el_ms",
}


def bench(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["bench", *args])


def test_help() -> None:
    result = bench("--help")
    assert result.exit_code == 0
    for option in (
        "--base-url",
        "--max-concurrency",
        "--request-rate",
        "--goodput",
        "--ignore-eos",
        "--save-result",
        "--plot",
        "--batch-size",
        "--seed",
        "--api-key",
    ):
        assert option in result.output
    assert "bench" in CliRunner().invoke(cli, ["--help"]).output


def test_single_run_prints_vllm_style_block(paced_target: BenchTarget) -> None:
    result = bench(
        "--base-url",
        paced_target.base_url,
        "--model",
        paced_target.chat_model,
        "--num-prompts",
        "3",
        "--output-len",
        "4",
        "--input-len",
        "8",
        "--goodput",
        "ttft:60000 tpot:60000",
    )
    assert result.exit_code == 0, result.output
    for label in (
        "Serving Benchmark Result",
        "Successful requests:",
        "Request goodput (req/s):",
        "Mean TTFT (ms):",
        "P99 ITL (ms):",
        "Median E2EL (ms):",
        "Truncated streams:",
    ):
        assert label in result.output
    assert "Successful requests:                     3" in result.output


def test_sweep_saves_json_and_plot(paced_target: BenchTarget, tmp_path: Path) -> None:
    out, png = tmp_path / "sweep.json", tmp_path / "plots" / "sweep.png"
    result = bench(
        "--base-url",
        paced_target.base_url + "/v1",
        "--model",
        paced_target.chat_model,
        "--num-prompts",
        "4",
        "--output-len",
        "4",
        "--input-len",
        "8",
        "--max-concurrency",
        "1,2",
        "--ignore-eos",
        "--seed",
        "3",
        "--save-result",
        str(out),
        "--plot",
        str(png),
    )
    assert result.exit_code == 0, result.output
    assert "TTFT med/p99 ms" in result.output  # the table
    document = json.loads(out.read_text())
    assert document["config"]["max_concurrency"] == [1, 2]
    runs = document["results"]
    assert [run["max_concurrency"] for run in runs] == [1, 2]
    for run in runs:
        assert set(run) >= VLLM_KEYS
        assert (run["completed"], run["failed"], run["truncated"]) == (4, 0, 0)
        assert run["total_output_tokens"] == 16
        assert run["backend"] == "openai-chat" and run["request_rate"] == "inf"
        assert run["request_goodput"] is None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embeddings_run(fake: FakeServer, tmp_path: Path) -> None:
    out, png = tmp_path / "embed.json", tmp_path / "embed.png"
    result = bench(
        "--base-url",
        fake.base_url,
        "--model",
        fake.embedding_model,
        "--endpoint",
        "embeddings",
        "--num-prompts",
        "5",
        "--batch-size",
        "3",
        "--max-concurrency",
        "1,2",
        "--save-result",
        str(out),
        "--plot",
        str(png),
    )
    assert result.exit_code == 0, result.output
    assert "inputs/s" in result.output
    runs = json.loads(out.read_text())["results"]
    for run in runs:
        assert set(run) >= VLLM_EMBED_KEYS
        assert run["total_input_sequences"] == 15
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_unknown_model_exits_1(fake: FakeServer) -> None:
    result = bench("--base-url", fake.base_url, "--model", "nope", "--num-prompts", "2")
    assert result.exit_code == 1
    assert "Error: The model 'nope' does not exist." in result.output


def test_unreachable_url_exits_1(unused_tcp_port: int) -> None:
    result = bench("--base-url", f"http://127.0.0.1:{unused_tcp_port}", "--model", "m", "--num-prompts", "2")
    assert result.exit_code == 1
    assert "Error: cannot reach" in result.output


@pytest.mark.parametrize(
    ("extra", "shown"),
    [([], "error x2: error event in stream: engine exploded"),
     (["--max-concurrency", "1,2"], "concurrency 2: error x2: error event in stream: engine exploded")],
)  # fmt: skip
def test_a_run_where_every_request_failed_exits_1(fake: FakeServer, extra: list[str], shown: str) -> None:
    fake.state.reset(FakeBehaviour(error_after=5))  # after the 4 tokens of the check request
    args = ["--base-url", fake.base_url, "--model", fake.chat_model, "--num-prompts=2", "--output-len=8"]
    result = bench(*args, *extra)
    assert result.exit_code == 1
    assert shown in result.output
    assert "Error: every request of a run failed" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-concurrency", "1,x"], "comma list of integers"),
        (["--max-concurrency", "0"], ">= 1"),
        (["--goodput", "ttft=5"], "invalid SLO"),
        (["--goodput", "itl:5"], "invalid SLO"),
        (["--request-rate", "0"], "must be > 0"),
        (["--metric-percentiles", "0"], "(0, 100]"),
        (["--base-url", "127.0.0.1:8000"], "http://"),
        (["--endpoint", "embeddings", "--goodput", "ttft:5"], "generation endpoints"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = bench("--model", "m", *args)
    assert result.exit_code == 2
    assert message in result.output
