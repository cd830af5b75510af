from __future__ import annotations

import pytest

from nanoserve.rag.ranking import apply_values, reciprocal_rank_fusion, value_multiplier


@pytest.mark.parametrize(
    ("rankings", "expected_order"),
    [
        ([["a", "b", "c"]], ["a", "b", "c"]),
        # an item high in both lists beats one that tops only one list
        ([["a", "b", "c"], ["b", "c", "a"]], ["b", "a", "c"]),
        ([["a", "b"], ["c", "b"]], ["b", "a", "c"]),
        # disjoint lists interleave by rank; ties keep first-seen order
        ([["a", "b"], ["c", "d"]], ["a", "c", "b", "d"]),
        ([[], ["x"]], ["x"]),
        ([], []),
    ],
)
def test_rrf_order(rankings: list[list[str]], expected_order: list[str]) -> None:
    assert [item for item, _ in reciprocal_rank_fusion(rankings)] == expected_order


def test_rrf_scores() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b"], ["b"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)


@pytest.mark.parametrize(
    ("chunk_value", "doc_value", "strength", "expected"),
    [
        (0.0, 0.0, 0.15, 1.0),
        (1.0, 1.0, 0.15, 1.15),
        (-1.0, -1.0, 0.15, 0.85),
        (1.0, 0.0, 0.1, 1.07),
        (5.0, 5.0, 0.15, 1.15),  # values are clipped: the boost stays bounded
    ],
)
def test_value_multiplier(chunk_value: float, doc_value: float, strength: float, expected: float) -> None:
    assert value_multiplier(chunk_value, doc_value, strength) == pytest.approx(expected)


def test_values_reorder_close_hits_only() -> None:
    hits = [(1, 10, 1.00), (2, 20, 0.95), (3, 30, 0.50)]
    # chunk 2 was rated good, chunk 1 bad: the close pair swaps
    ranked = apply_values(hits, {1: -1.0, 2: 1.0, 3: 1.0}, {10: -1.0, 20: 1.0, 30: 1.0})
    assert [r.chunk_id for r in ranked] == [2, 1, 3]
    # ... but the clearly worse chunk 3 stays last however good its value
    assert ranked[-1].chunk_id == 3
    assert ranked[0].base_score == 0.95


def test_no_values_keeps_order() -> None:
    hits = [(1, 1, 0.3), (2, 1, 0.3), (3, 1, 0.2)]
    assert [r.chunk_id for r in apply_values(hits, {}, {})] == [1, 2, 3]


def test_strength_must_be_below_one() -> None:
    with pytest.raises(ValueError):
        apply_values([], {}, {}, strength=1.0)
