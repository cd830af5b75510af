"""The quality of an answer, scored on named dimensions in [0, 1] (pure).

Every dimension is defined here and in docs/rag.md, and tests/rag/test_quality.py shows on
labelled examples that each one scores good answers above bad ones.

relevance
    Does the answer address the question? Cosine similarity of the question's and the answer's
    embeddings, rescaled so 0.1 -> 0 and 0.6 -> 1.
grounding
    Is what the answer says in the retrieved text? The share of answer sentences whose support by
    their best context chunk (``citations.support``: semantic or lexical) reaches 0.45.
citation_validity
    Do the citation markers point at chunks that say what the sentence says? The share of markers
    ``[n]`` that name an existing context chunk supporting their sentence at least 0.3. An answer
    without any marker scores 0 (nothing can be checked).
coverage
    Does the answer use all the relevant evidence? Of the context chunks relevant to the question
    (cosine with the question at least 0.35, or the single best chunk if none is), the share that
    is the best support of at least one answer sentence (with support at least 0.45).
retrieval
    Was there something relevant to answer from? The best cosine similarity between the question
    and the context chunks, rescaled like relevance.
question_coverage
    Does some sentence of the answer speak to what was asked? The largest share of the question's
    content words found in one answer sentence.

overall is calibrated: the probability that the answer is right, a logistic regression over the
dimensions that separate right from wrong answers (``CALIBRATION``), fitted on answers of the
tuning corpora labelled by reading them (benchmarks/rag/answer-labels.jsonl; the fit, and each
dimension's ROC AUC, by ``benchmarks/rag/calibrate.py quality``). It is the score the API, the
traces and the metrics show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nanoserve.rag.citations import ASSIGN_SUPPORT, KEEP_SUPPORT, split_answer, support
from nanoserve.rag.text import cited_numbers, containment, cosine, strip_citations

DIMENSIONS = ("relevance", "grounding", "citation_validity", "coverage", "retrieval", "question_coverage")
REL_FLOOR, REL_CEIL = 0.1, 0.6
COVERAGE_MIN_SIM = 0.35


@dataclass(frozen=True, slots=True)
class QualityInput:
    """Everything the dimensions look at. Vectors are the embedding model's: ``sentence_vecs[i]``
    embeds ``strip_citations(split_answer(answer)[i])``, ``context_vecs[j]`` embeds ``contexts[j]``."""

    query: str
    answer: str
    contexts: Sequence[str]
    query_vec: Sequence[float]
    answer_vec: Sequence[float]
    sentence_vecs: Sequence[Sequence[float]]
    context_vecs: Sequence[Sequence[float]]


def _rescale(similarity: float) -> float:
    return max(0.0, min(1.0, (similarity - REL_FLOOR) / (REL_CEIL - REL_FLOOR)))


def relevance(q: QualityInput) -> float:
    return _rescale(cosine(q.query_vec, q.answer_vec))


def _sentence_supports(q: QualityInput) -> list[tuple[str, list[float]]]:
    out = []
    for i, sentence in enumerate(split_answer(q.answer)):
        plain = strip_citations(sentence)
        if not plain:
            continue
        svec = q.sentence_vecs[i] if i < len(q.sentence_vecs) else None
        scores = [
            support(plain, svec, ctx, q.context_vecs[j] if j < len(q.context_vecs) else None, q.query)
            for j, ctx in enumerate(q.contexts)
        ]
        out.append((sentence, scores))
    return out


def grounding(q: QualityInput) -> float:
    rows = _sentence_supports(q)
    if not rows:
        return 0.0
    return sum(1 for _, scores in rows if max(scores, default=0.0) >= ASSIGN_SUPPORT) / len(rows)


def citation_validity(q: QualityInput) -> float:
    total = valid = 0
    for sentence, scores in _sentence_supports(q):
        for n in cited_numbers(sentence):
            total += 1
            if 1 <= n <= len(scores) and scores[n - 1] >= KEEP_SUPPORT:
                valid += 1
    return valid / total if total else 0.0


def coverage(q: QualityInput) -> float:
    if not q.contexts or not q.context_vecs:
        return 0.0
    sims = [cosine(q.query_vec, v) for v in q.context_vecs]
    relevant = [j for j, s in enumerate(sims) if s >= COVERAGE_MIN_SIM] or [
        max(range(len(sims)), key=sims.__getitem__)
    ]
    rows = _sentence_supports(q)
    used_chunks = {
        j
        for _, scores in rows
        if scores
        for j, v in enumerate(scores)
        if v >= ASSIGN_SUPPORT and v == max(scores)
    }
    used = sum(1 for j in relevant if j in used_chunks)
    return used / len(relevant)


def retrieval(q: QualityInput) -> float:
    return max((_rescale(cosine(q.query_vec, v)) for v in q.context_vecs), default=0.0)


def question_coverage(q: QualityInput) -> float:
    parts = [strip_citations(s) for s in split_answer(q.answer)]
    return max((containment(q.query, s) for s in parts if s), default=0.0)


SCORERS = {
    "relevance": relevance,
    "grounding": grounding,
    "citation_validity": citation_validity,
    "coverage": coverage,
    "retrieval": retrieval,
    "question_coverage": question_coverage,
}


@dataclass(frozen=True, slots=True)
class Calibration:
    """P(right) = sigmoid(intercept + sum(weights[d] * dimension d))."""

    intercept: float
    weights: Mapping[str, float] = field(default_factory=dict)

    def probability(self, dims: Mapping[str, float]) -> float:
        z = self.intercept + sum(w * dims[name] for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


# fitted by benchmarks/rag/calibrate.py quality on benchmarks/rag/answer-labels.jsonl (50 git
# answers, 29 right) with --keep question_coverage, l2 1 (results/quality-calibration.json): the
# only dimension whose ROC AUC (0.70) is clearly above chance there; relevance, grounding,
# citation_validity, coverage and retrieval scored 0.52-0.59 and are reported, not scored
CALIBRATION = Calibration(-0.3628, {"question_coverage": 1.1761})


def score(q: QualityInput, calibration: Calibration = CALIBRATION) -> dict[str, float]:
    """``{"overall": ..., <dimension>: ...}``, rounded to 4 places."""
    dims = {name: SCORERS[name](q) for name in DIMENSIONS}
    overall = calibration.probability(dims)
    return {"overall": round(overall, 4), **{k: round(v, 4) for k, v in dims.items()}}


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Probability that a random right answer scores above a random wrong one (ties count half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        raise ValueError("ROC AUC needs both right and wrong answers")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def fit_calibration(
    rows: Sequence[Mapping[str, float]],
    labels: Sequence[bool],
    dimensions: Sequence[str],
    *,
    l2: float = 1.0,
    iterations: int = 50,
) -> Calibration:
    """L2-regularised logistic regression (Newton's method; the intercept is not penalised)."""
    import numpy as np

    x = np.array([[1.0, *(r[d] for d in dimensions)] for r in rows])
    y = np.array([1.0 if v else 0.0 for v in labels])
    penalty = np.eye(x.shape[1]) * l2
    penalty[0, 0] = 0.0
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        grad = x.T @ (p - y) + penalty @ beta
        hess = x.T @ (x * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return Calibration(float(beta[0]), {d: float(b) for d, b in zip(dimensions, beta[1:])})
