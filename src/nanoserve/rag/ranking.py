"""Rank fusion and the learned value boost (pure).

* ``reciprocal_rank_fusion``: hybrid retrieval merges the dense and keyword rankings by
  ``sum 1 / (k + rank)`` (Cormack et al., 2009; k = 60), so neither score scale dominates.
  Each ranking may carry a weight (``weights``): a weighted vote, ``sum w / (k + rank)``.
* ``diversify``: document-level aggregation and diversity over fused chunk scores. A document
  whose further chunks also match gains ``aggregate * (s2 + s3)`` on its best chunk (evidence
  from more than one passage), and the n-th chunk of one document is damped by ``decay ** (n-1)``,
  so five chunks of one long guide do not crowd out the short page that answers.
* ``apply_values``: feedback-learned values in [-1, 1] multiply a hit's score by
  ``1 + strength * value``. With strength 0.15 a chunk's score moves at most 15% either way,
  so feedback reorders close candidates but cannot lift an irrelevant chunk over a clearly
  better one: the effect is bounded by construction (and measured in tests/rag).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

RRF_K = 60
DEFAULT_VALUE_STRENGTH = 0.15

K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], *, k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Items of all rankings ordered by fused score (ties: first seen first)."""
    if weights is not None and len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[K, float] = {}
    for n, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[n]
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def diversify(
    hits: Sequence[tuple[int, int, float]], *, aggregate: float = 0.0, decay: float = 1.0
) -> list[tuple[int, int, float]]:
    """Re-score ``(chunk_id, document_id, score)`` hits (higher is better) at document level:
    the best chunk of a document gains ``aggregate`` times the scores of its next two chunks, the
    n-th best is multiplied by ``decay ** (n - 1)``. ``aggregate=0, decay=1`` changes nothing."""
    if not (aggregate >= 0.0 and 0.0 < decay <= 1.0):
        raise ValueError("aggregate must be >= 0 and decay in (0, 1]")
    by_doc: dict[int, list[tuple[int, int, float]]] = {}
    for hit in sorted(hits, key=lambda h: -h[2]):
        by_doc.setdefault(hit[1], []).append(hit)
    out = []
    for doc_hits in by_doc.values():
        support = aggregate * sum(h[2] for h in doc_hits[1:3])
        for n, (chunk, doc, score) in enumerate(doc_hits):
            out.append((chunk, doc, score * decay**n + (support if n == 0 else 0.0)))
    order = {h[0]: i for i, h in enumerate(hits)}
    return sorted(out, key=lambda h: (-h[2], order[h[0]]))


@dataclass(frozen=True, slots=True)
class Ranked:
    chunk_id: int
    document_id: int
    score: float  # the retrieval score after the value boost
    base_score: float  # the retrieval score before it


def value_multiplier(chunk_value: float, document_value: float, strength: float) -> float:
    """``1 + strength * v`` where v blends the chunk's value with its document's (both in [-1, 1])."""
    blended = 0.7 * _clip(chunk_value) + 0.3 * _clip(document_value)
    return 1.0 + strength * blended


def apply_values(
    hits: Sequence[tuple[int, int, float]],
    chunk_values: Mapping[int, float],
    document_values: Mapping[int, float],
    *,
    strength: float = DEFAULT_VALUE_STRENGTH,
) -> list[Ranked]:
    """Re-rank ``(chunk_id, document_id, score)`` hits (scores >= 0, higher is better) by value."""
    if not 0.0 <= strength < 1.0:
        raise ValueError("strength must be in [0, 1)")
    ranked = [
        Ranked(c, d, s * value_multiplier(chunk_values.get(c, 0.0), document_values.get(d, 0.0), strength), s)
        for c, d, s in hits
    ]
    order = {r.chunk_id: i for i, r in enumerate(ranked)}
    return sorted(ranked, key=lambda r: (-r.score, order[r.chunk_id]))


def _clip(value: float) -> float:
    return max(-1.0, min(1.0, value))
