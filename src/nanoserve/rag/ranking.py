"""Rank fusion and the learned value boost (pure).

* ``reciprocal_rank_fusion``: hybrid retrieval merges the dense and keyword rankings by
  ``sum 1 / (k + rank)`` (Cormack et al., 2009; k = 60), so neither score scale dominates.
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


def reciprocal_rank_fusion(rankings: Sequence[Sequence[K]], *, k: int = RRF_K) -> list[tuple[K, float]]:
    """Items of all rankings ordered by fused score (ties: first seen first)."""
    scores: dict[K, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


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
