"""``nanoserve ingest`` and ``nanoserve rag ...`` against a running server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, RagServer

from nanoserve.cli.main import cli


@pytest.mark.parametrize("args", [["ingest", "--help"], ["rag", "--help"], ["rag", "query", "--help"],
                                  ["rag", "eval", "--help"], ["rag", "trace", "--help"]])  # fmt: skip
def test_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "Usage:" in result.output


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest"]).exit_code == 2
    assert runner.invoke(cli, ["ingest", str(tmp_path / "missing")]).exit_code == 2
    assert runner.invoke(cli, ["rag", "query", "q", "--strategy", "magic"]).exit_code == 2


def test_unreachable_gateway_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\ntext")
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "cannot reach" in result.output


def test_ingest_query_trace_and_eval(rag_server: RagServer, tmp_path: Path) -> None:
    runner = CliRunner()
    collection = "cli-" + uuid.uuid4().hex[:8]
    url = ["--url", rag_server.url]
    result = runner.invoke(cli, ["ingest", str(DATA / "corpus"), "--collection", collection, *url])
    assert result.exit_code == 0, result.output
    assert (
        "4 files: 4 created" in result.output and "chunks/s" in result.output and "files/s" in result.output
    )
    again = runner.invoke(cli, ["ingest", str(DATA / "corpus"), "-c", collection, *url])
    assert "4 files: 4 unchanged" in again.output

    asked = runner.invoke(cli, ["rag", "query", "How should I store green tea?", "-c", collection, *url])
    assert asked.exit_code == 0, asked.output
    assert "green-tea.md" in asked.output and "trace tr_" in asked.output
    trace_id = asked.output.split("trace ")[-1].split()[0]
    shown = runner.invoke(cli, ["rag", "trace", trace_id, *url])
    assert json.loads(shown.output)["id"] == trace_id

    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {"query": "How often should I lubricate the chain?", "relevant": ["bicycle-maintenance.md"]},
                {"query": "What does hooch on a starter mean?", "relevant": ["sourdough.html"]},
                {"query": "focuser drift after meridian flip", "relevant": ["release-notes.txt"]},
                {"query": "Who won the football world cup in 2018?", "relevant": []},
            ]
        )
    )
    out = tmp_path / "results.json"
    evaluated = runner.invoke(
        cli, ["rag", "eval", "-c", collection, "--questions", str(questions), "-o", str(out), *url]
    )
    assert evaluated.exit_code == 0, evaluated.output
    results = json.loads(out.read_text())
    assert set(results["strategies"]) == {"auto", "semantic", "keyword", "hybrid"}
    assert (
        results["strategies"]["hybrid"]["recall@5"] == 1.0
        and results["strategies"]["hybrid"]["questions"] == 3
    )
    assert "ndcg@10" in evaluated.output and "cites_relevant" in evaluated.output
    answers = results["answers"]
    assert (answers["in_scope"], answers["out_of_scope"]) == (3, 1)
    assert answers["out_of_scope_declined"] == 1.0 and answers["cites_relevant"] >= 2 / 3
    assert {"embed", "retrieve"} <= set(answers["latency_ms"])
    assert results["per_question"][3]["answer"]["mode"] == "refused"

    missing = runner.invoke(cli, ["rag", "query", "x", "-c", "no-such-collection", *url])
    assert missing.exit_code == 1 and "404" in missing.output
