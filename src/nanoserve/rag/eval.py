"""Retrieval evaluation (pure): recall@k, MRR and nDCG@10 over ranked document names.

A questions file has one JSON object per line: ``{"query": "...", "relevant": ["doc name", ...]}``.
Relevance is binary and judged per document: the ranked chunks of a query are reduced to the
ranked list of their distinct documents before scoring.
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
    relevant: frozenset[str]


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
        if not isinstance(relevant, list) or not relevant or not all(isinstance(r, str) for r in relevant):
            raise BadRequest(f"{path}:{number}: 'relevant' must be a non-empty list of document names")
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
