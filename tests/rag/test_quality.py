"""Each quality dimension separates good answers from bad ones on labelled examples
(tests/rag/data/quality_examples.jsonl), scored with the real embedding model."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest
from conftest import DATA

from nanoserve.rag.citations import split_answer
from nanoserve.rag.quality import DIMENSIONS, QualityInput, score
from nanoserve.rag.text import strip_citations

EXAMPLES = [
    json.loads(line) for line in (DATA / "quality_examples.jsonl").read_text().splitlines() if line.strip()
]

Embed = Callable[[list[str]], list[list[float]]]


def quality_input(embed: Embed, query: str, answer: str, contexts: Sequence[str]) -> QualityInput:
    sentences = [strip_citations(s) for s in split_answer(answer)]
    vecs = embed([query, answer, *sentences, *contexts])
    n = len(sentences)
    return QualityInput(query, answer, list(contexts), vecs[0], vecs[1], vecs[2 : 2 + n], vecs[2 + n :])


def pairs(embed: Embed, dimension: str) -> list[tuple[dict[str, float], dict[str, float]]]:
    out = []
    for ex in EXAMPLES:
        good = score(quality_input(embed, ex["query"], ex["good"], ex["contexts"]))
        if dimension == "retrieval":
            bad = score(quality_input(embed, ex["query"], ex["good"], ex["bad_contexts"]))
        else:
            bad = score(quality_input(embed, ex["query"], ex["bad"][dimension], ex["contexts"]))
        out.append((good, bad))
    return out


# each constructed example has a bad variant per original dimension; question_coverage and the
# calibrated overall score are measured on real labelled answers (test_calibration.py)
CONSTRUCTED = ("relevance", "grounding", "citation_validity", "coverage", "retrieval")


@pytest.mark.parametrize("dimension", CONSTRUCTED)
def test_dimension_separates_good_from_bad(embed_texts: Embed, dimension: str) -> None:
    results = pairs(embed_texts, dimension)
    wins = sum(1 for good, bad in results if good[dimension] > bad[dimension])
    gap = sum(good[dimension] - bad[dimension] for good, bad in results) / len(results)
    assert wins == len(results), [(g[dimension], b[dimension]) for g, b in results]
    assert gap >= 0.4


def test_every_dimension_and_the_calibrated_score_are_reported(embed_texts: Embed) -> None:
    for ex in EXAMPLES:
        q = score(quality_input(embed_texts, ex["query"], ex["good"], ex["contexts"]))
        assert set(q) == {"overall", *DIMENSIONS}
        assert 0.0 < q["overall"] < 1.0


def test_scores_are_in_unit_range(embed_texts: Embed) -> None:
    for dimension in CONSTRUCTED:
        for good, bad in pairs(embed_texts, dimension):
            for value in (*good.values(), *bad.values()):
                assert 0.0 <= value <= 1.0
