"""The calibrated quality score and the support check, on answers and sentence/chunk pairs from
the tuning corpora labelled by reading them (benchmarks/rag/*-labels.jsonl), scored with the real
embedding model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nanoserve.rag.quality import CALIBRATION, DIMENSIONS, Calibration, fit_calibration, roc_auc

BENCH = Path(__file__).parents[2] / "benchmarks" / "rag"


def labelled(name: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (BENCH / name).read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("scores", "labels", "auc"),
    [
        ([0.9, 0.8, 0.2, 0.1], [True, True, False, False], 1.0),
        ([0.1, 0.2, 0.8, 0.9], [True, True, False, False], 0.0),
        ([0.5, 0.5, 0.5, 0.5], [True, False, True, False], 0.5),
        ([0.9, 0.3, 0.6, 0.1], [True, True, False, False], 0.75),
    ],
)
def test_roc_auc(scores: list[float], labels: list[bool], auc: float) -> None:
    assert roc_auc(scores, labels) == pytest.approx(auc)


def test_roc_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [True, True])


def test_fit_separates_and_ignores_noise() -> None:
    rows = [{"a": x / 10, "b": (x * 7 % 10) / 10} for x in range(10)]
    labels = [r["a"] >= 0.5 for r in rows]
    fitted = fit_calibration(rows, labels, ["a", "b"], l2=0.1)
    assert fitted.weights["a"] > 5 * abs(fitted.weights["b"])
    assert roc_auc([fitted.probability(r) for r in rows], labels) == 1.0
    assert 0.0 < Calibration(-1.0, {"a": 2.0}).probability({"a": 0.5}) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def answer_rows(embed_texts):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    import support_check
    from calibrate import quality_rows

    original = support_check.local_embedder
    support_check.local_embedder = lambda: embed_texts  # the session's model, loaded once
    try:
        labels = labelled("answer-labels.jsonl")
        return labels, quality_rows(labels)
    finally:
        support_check.local_embedder = original


def test_committed_calibration_is_the_fit_of_the_labels(answer_rows) -> None:  # type: ignore[no-untyped-def]
    labels, rows = answer_rows
    right = [bool(ex["right"]) for ex in labels]
    assert len(labels) >= 40 and 0 < sum(right) < len(right)
    refit = fit_calibration(rows, right, list(CALIBRATION.weights), l2=1.0)
    assert refit.intercept == pytest.approx(CALIBRATION.intercept, abs=1e-3)
    for name, weight in CALIBRATION.weights.items():
        assert name in DIMENSIONS and refit.weights[name] == pytest.approx(weight, abs=1e-3)


def test_calibrated_score_separates_right_from_wrong(answer_rows) -> None:  # type: ignore[no-untyped-def]
    labels, rows = answer_rows
    right = [bool(ex["right"]) for ex in labels]
    assert roc_auc([CALIBRATION.probability(r) for r in rows], right) >= 0.65


def test_support_check_measurement_is_reproduced(embed_texts) -> None:  # type: ignore[no-untyped-def]
    """support_check.py on the labelled pairs gives the numbers docs/rag.md reports."""
    sys.path.insert(0, str(BENCH))
    from support_check import evaluate

    pairs = labelled("support-labels.jsonl")
    committed = json.loads((BENCH / "results" / "support-check.json").read_text())
    result = evaluate(pairs, embed_texts)
    assert len(pairs) == committed["pairs"] >= 30
    assert result["auc"] == pytest.approx(committed["auc"], abs=0.01)
    for got, want in zip(result["thresholds"], committed["thresholds"]):
        assert got["kept"] == pytest.approx(want["kept"], abs=1)


def test_support_check_on_a_real_generated_answer(embed_texts) -> None:  # type: ignore[no-untyped-def]
    """The 135M model's answer to a git question (its trace): the loop it fell into is cut, and
    what is left cites only chunks that the kept sentences match."""
    from nanoserve.rag.citations import attach_citations, split_answer
    from nanoserve.rag.text import strip_citations

    pairs = labelled("support-labels.jsonl")
    query = "How do I undo the last commit but keep my changes?"
    contexts = list(dict.fromkeys(p["chunk"] for p in pairs if p["query"] == query))[:3]
    generated = (
        "You can undo the last commit by using the git-reset command. $ git reset --soft HEAD^ "
        "This will delete the last commit you made. You can also use the git-reset command to undo "
        "the last commit. $ git reset --soft HEAD^ This will delete the last commit you made."
    )
    sentences = [strip_citations(s) for s in split_answer(generated)]
    vecs = embed_texts([*sentences, *contexts])
    cited = attach_citations(
        generated, contexts, sentence_vecs=vecs[: len(sentences)], context_vecs=vecs[len(sentences) :],
        query=query, drop_unsupported=True,
    )  # fmt: skip
    assert cited.text.count("git reset --soft HEAD^") == 1 and cited.dropped >= 1
    used = {c.context_index for c in cited.citations}
    assert used and all(0 <= j < len(contexts) for j in used)
    assert len(cited.citations) == len(set(cited.citations))
