"""Credit assignment from feedback to chunk and document values (pure).

Seed 000's "node values": every chunk and document has a value in [-1, 1], 0 until feedback says
otherwise. A rating r in [-1, 1] on an answer is shared out as *credit* c in [0, 1]:

* chunks the answer cited share the credit by citation order weight (1 / position), the first one
  getting c = 1; chunks that were in the context but not cited get ``UNCITED_SHARE`` of what they
  would get by rank, since they shaped the answer less;
* an answer with no citations (e.g. "not in the documents") spreads credit over the retrieved chunks
  by rank, so a bad rating pushes down what was retrieved.

Each value moves toward the rating in proportion to its credit: ``v <- v + rate * c * (r - v)``.
This is an exponential moving average, so values stay in [-1, 1] whatever the feedback sequence,
and repeated identical ratings converge instead of growing without bound. A document's credit is the
largest credit of its chunks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_LEARNING_RATE = 0.3
UNCITED_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class UsedChunk:
    chunk_id: int
    document_id: int
    rank: int  # 1-based retrieval rank
    citation: int | None  # citation number in the answer (1-based), None if not cited


@dataclass(frozen=True, slots=True)
class ValueUpdate:
    id: int
    credit: float
    old: float
    new: float


@dataclass(frozen=True, slots=True)
class CreditAssignment:
    chunks: list[ValueUpdate]
    documents: list[ValueUpdate]


def credits(used: Sequence[UsedChunk]) -> dict[int, float]:
    """Credit in [0, 1] per chunk id; the most responsible chunk gets 1."""
    if not used:
        return {}
    raw: dict[int, float] = {}
    any_cited = any(u.citation is not None for u in used)
    for u in used:
        if u.citation is not None:
            weight = 1.0 / u.citation
        else:
            weight = (UNCITED_SHARE if any_cited else 1.0) / max(1, u.rank)
        raw[u.chunk_id] = max(raw.get(u.chunk_id, 0.0), weight)
    top = max(raw.values())
    return {cid: w / top for cid, w in raw.items()}


def update_value(old: float, rating: float, credit: float, rate: float) -> float:
    new = old + rate * credit * (rating - old)
    return max(-1.0, min(1.0, new))


def assign_credit(
    used: Sequence[UsedChunk],
    rating: float,
    chunk_values: Mapping[int, float],
    document_values: Mapping[int, float],
    *,
    rate: float = DEFAULT_LEARNING_RATE,
) -> CreditAssignment:
    if not -1.0 <= rating <= 1.0:
        raise ValueError("rating must be in [-1, 1]")
    if not 0.0 < rate <= 1.0:
        raise ValueError("rate must be in (0, 1]")
    chunk_credit = credits(used)
    doc_credit: dict[int, float] = {}
    for u in used:
        doc_credit[u.document_id] = max(doc_credit.get(u.document_id, 0.0), chunk_credit[u.chunk_id])

    def updates(credit: dict[int, float], values: Mapping[int, float]) -> list[ValueUpdate]:
        out = []
        for key, c in credit.items():
            old = values.get(key, 0.0)
            out.append(ValueUpdate(key, c, old, update_value(old, rating, c, rate)))
        return out

    return CreditAssignment(updates(chunk_credit, chunk_values), updates(doc_credit, document_values))
