from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nanoserve.errors import BadRequest
from nanoserve.rag.eval import (
    Answered,
    Question,
    distinct,
    load_questions,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
    score_answers,
    score_run,
)

R = frozenset


@pytest.mark.parametrize(
    ("ranked", "relevant", "k", "expected"),
    [
        (["a", "b", "c"], R({"a"}), 1, 1.0),
        (["b", "a", "c"], R({"a"}), 1, 0.0),
        (["b", "a", "c"], R({"a", "c"}), 2, 0.5),
        (["b", "a", "c"], R({"a", "c"}), 3, 1.0),
        ([], R({"a"}), 5, 0.0),
    ],
)
def test_recall(ranked: list[str], relevant: frozenset[str], k: int, expected: float) -> None:
    assert recall_at_k(ranked, relevant, k) == expected


@pytest.mark.parametrize(
    ("ranked", "relevant", "expected"),
    [
        (["a"], R({"a"}), 1.0),
        (["x", "y", "a"], R({"a"}), 1 / 3),
        (["x"], R({"a"}), 0.0),
        (["x", "a", "b"], R({"a", "b"}), 0.5),
    ],
)
def test_reciprocal_rank(ranked: list[str], relevant: frozenset[str], expected: float) -> None:
    assert reciprocal_rank(ranked, relevant) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("ranked", "relevant", "expected"),
    [
        (["a", "b"], R({"a", "b"}), 1.0),
        (["x", "a"], R({"a"}), 1 / math.log2(3)),
        (["a", "x", "b"], R({"a", "b"}), (1 + 1 / 2) / (1 + 1 / math.log2(3))),
        (["x"] * 10 + ["a"], R({"a"}), 0.0),  # beyond the cut-off
    ],
)
def test_ndcg(ranked: list[str], relevant: frozenset[str], expected: float) -> None:
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(expected)


def test_distinct_turns_chunks_into_documents() -> None:
    assert distinct(["a", "a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_score_run_means() -> None:
    qs = [Question("q1", R({"a"})), Question("q2", R({"b"}))]
    scores = score_run([["a", "b"], ["a", "b"]], qs)
    assert scores.recall[1] == 0.5 and scores.recall[3] == 1.0
    assert scores.mrr == pytest.approx(0.75)
    assert scores.as_dict()["questions"] == 2


def test_load_questions(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"query": "how?", "relevant": ["a.md"]}) + "\n\n")
    assert load_questions(path) == [Question("how?", R({"a.md"}))]


@pytest.mark.parametrize(
    "line",
    ['{"query": "x"}', '{"query": "", "relevant": ["a"]}', '{"query": "x", "relevant": "a"}', "not json"],
)
def test_load_questions_rejects_bad_lines(tmp_path: Path, line: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(BadRequest, match=":1:"):
        load_questions(path)


def test_out_of_scope_questions_have_an_empty_relevant_list(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "a?", "relevant": ["x.md"]}\n{"query": "weather?", "relevant": []}\n')
    qs = load_questions(path)
    assert [q.in_scope for q in qs] == [True, False]
    path.write_text('{"query": "a?", "relevant": [""]}\n')
    with pytest.raises(BadRequest):
        load_questions(path)


def test_answer_metrics() -> None:
    a, b, oos = Question("a?", R({"a.md"})), Question("b?", R({"b.md"})), Question("weather?", R())
    answers = [
        Answered(a, False, R({"a.md", "z.md"}), "generated", {"embed": 10.0, "generate": 100.0}),
        Answered(
            b, False, R({"z.md"}), "extractive", {"embed": 20.0, "generate": 300.0}
        ),  # cites no relevant
        Answered(b, True, R(), "refused", {"embed": 30.0}),  # a false refusal
        Answered(oos, True, R(), "refused", {"embed": 40.0}),
        Answered(oos, False, R({"a.md"}), "generated", {"embed": 50.0}),  # should have declined
    ]
    m = score_answers(answers)
    assert (m["in_scope"], m["out_of_scope"]) == (3, 2)
    assert m["cites_relevant"] == round(1 / 3, 4)  # the decline counts as a miss
    assert m["false_refusal_rate"] == round(1 / 3, 4)
    assert m["out_of_scope_declined"] == 0.5
    assert m["refusal_precision"] == 0.5
    assert m["answer_modes"] == {"generated": 2, "extractive": 1, "refused": 2}
    assert m["latency_ms"]["embed"] == {"mean": 30.0, "p50": 30.0}
    assert m["latency_ms"]["generate"] == {"mean": 200.0, "p50": 200.0}
    assert score_answers([Answered(a, False, R({"a.md"}), "generated", {})])["refusal_precision"] is None
