"""Evaluation (pure): retrieval (recall@k, MRR, nDCG@10) and answers (citations, refusals).

A questions file has one JSON object per line: ``{"query": "...", "relevant": ["doc name", ...]}``;
``"relevant": []`` marks an out-of-scope question, which the pipeline should decline. Relevance is
binary and judged per document: the ranked chunks of a query are reduced to the ranked list of
their distinct documents before scoring. Retrieval metrics are over in-scope questions only.

Answers (``score_answers``), one ``Answered`` per question:

* ``cites_relevant``: share of in-scope questions whose answer cites a relevant document (a
  decline counts as a miss);
* ``false_refusal_rate``: share of in-scope questions declined;
* ``out_of_scope_declined``: share of out-of-scope questions declined;
* ``refusal_precision``: share of declines that were out-of-scope questions (None: no declines);
* answer modes (generated, extractive, refused) and the mean and p50 of each phase's latency.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nanoserve.errors import BadRequest

RECALL_KS = (1, 3, 5, 10)
NDCG_K = 10


@dataclass(frozen=True, slots=True)
class Question:
    query: str
    relevant: frozenset[str]  # empty: out of scope

    @property
    def in_scope(self) -> bool:
        return bool(self.relevant)


def load_questions(path: str | Path) -> list[Question]:
    questions: list[Question] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            query, relevant = obj["query"], obj["relevant"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequest(f'{path}:{number}: expected {{"query": ..., "relevant": [...]}}') from exc
        if not isinstance(query, str) or not query.strip():
            raise BadRequest(f"{path}:{number}: 'query' must be a non-empty string")
        if not isinstance(relevant, list) or not all(isinstance(r, str) and r for r in relevant):
            raise BadRequest(
                f"{path}:{number}: 'relevant' must be a list of document names ([] = out of scope)"
            )
        questions.append(Question(query, frozenset(relevant)))
    if not questions:
        raise BadRequest(f"{path}: no questions")
    return questions


def distinct(items: Iterable[str]) -> list[str]:
    """Items in first-seen order without repeats (chunk ranking -> document ranking)."""
    return list(dict.fromkeys(items))


def recall_at_k(ranked: Sequence[str], relevant: frozenset[str], k: int) -> float:
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: frozenset[str]) -> float:
    for rank, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: frozenset[str], k: int = NDCG_K) -> float:
    dcg = sum(1.0 / math.log2(rank + 1) for rank, item in enumerate(ranked[:k], start=1) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


@dataclass(frozen=True, slots=True)
class Scores:
    recall: dict[int, float]
    mrr: float
    ndcg: float
    questions: int

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {f"recall@{k}": round(v, 4) for k, v in self.recall.items()}
        out["mrr"] = round(self.mrr, 4)
        out[f"ndcg@{NDCG_K}"] = round(self.ndcg, 4)
        out["questions"] = self.questions
        return out


def score_run(rankings: Sequence[Sequence[str]], questions: Sequence[Question]) -> Scores:
    """Mean metrics over questions; ``rankings[i]`` is the document ranking for ``questions[i]``."""
    if len(rankings) != len(questions):
        raise ValueError("one ranking per question")
    n = len(questions)
    if n == 0:
        return Scores({k: 0.0 for k in RECALL_KS}, 0.0, 0.0, 0)
    recall = {
        k: sum(recall_at_k(r, q.relevant, k) for r, q in zip(rankings, questions)) / n for k in RECALL_KS
    }
    mrr = sum(reciprocal_rank(r, q.relevant) for r, q in zip(rankings, questions)) / n
    ndcg = sum(ndcg_at_k(r, q.relevant) for r, q in zip(rankings, questions)) / n
    return Scores(recall, mrr, ndcg, n)


@dataclass(frozen=True, slots=True)
class Answered:
    """What the pipeline answered to one question."""

    question: Question
    declined: bool
    cited_documents: frozenset[str]
    answer_mode: str
    timings_ms: dict[str, float]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def score_answers(answers: Sequence[Answered]) -> dict[str, object]:
    """Answer-level metrics (module docstring); rates are None when their denominator is 0."""
    in_scope = [a for a in answers if a.question.in_scope]
    out_scope = [a for a in answers if not a.question.in_scope]
    declined = [a for a in answers if a.declined]

    def rate(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    cites = sum(1 for a in in_scope if not a.declined and a.cited_documents & a.question.relevant)
    modes: dict[str, int] = {}
    for a in answers:
        modes[a.answer_mode] = modes.get(a.answer_mode, 0) + 1
    phases: dict[str, list[float]] = {}
    for a in answers:
        for name, ms in a.timings_ms.items():
            phases.setdefault(name, []).append(ms)
    return {
        "in_scope": len(in_scope),
        "out_of_scope": len(out_scope),
        "cites_relevant": rate(cites, len(in_scope)),
        "false_refusal_rate": rate(sum(1 for a in in_scope if a.declined), len(in_scope)),
        "out_of_scope_declined": rate(sum(1 for a in out_scope if a.declined), len(out_scope)),
        "refusal_precision": rate(sum(1 for a in declined if not a.question.in_scope), len(declined)),
        "answer_modes": modes,
        "latency_ms": {
            name: {"mean": round(sum(v) / len(v), 1), "p50": round(_median(v), 1)}
            for name, v in phases.items()
        },
    }
