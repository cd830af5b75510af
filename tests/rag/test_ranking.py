from __future__ import annotations

import pytest

from nanoserve.rag.ranking import apply_values, diversify, reciprocal_rank_fusion, value_multiplier


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


def test_weighted_rrf_lets_one_ranking_count_more() -> None:
    plain = [item for item, _ in reciprocal_rank_fusion([["a", "b"], ["b", "a"]])]
    dense_first = [item for item, _ in reciprocal_rank_fusion([["a", "b"], ["b", "a"]], weights=(2.0, 1.0))]
    keyword_first = [item for item, _ in reciprocal_rank_fusion([["a", "b"], ["b", "a"]], weights=(1.0, 2.0))]
    assert plain == ["a", "b"] and dense_first == ["a", "b"] and keyword_first == ["b", "a"]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], weights=(1.0, 2.0))


def test_diversify_keeps_order_by_default_and_lets_a_short_page_through() -> None:
    # document 1 (a long guide) has four chunks above the short page's (document 2) only chunk
    hits = [(10, 1, 0.50), (11, 1, 0.49), (12, 1, 0.48), (13, 1, 0.47), (20, 2, 0.46)]
    assert diversify(hits) == hits
    damped = [h[0] for h in diversify(hits, decay=0.8)]
    assert damped[:2] == [10, 20]  # the page is second, not fifth
    with pytest.raises(ValueError):
        diversify(hits, decay=0.0)


def test_diversify_aggregates_a_documents_supporting_chunks() -> None:
    # document 2's best chunk is a little below document 1's, but two more of its chunks match
    hits = [(10, 1, 0.50), (20, 2, 0.48), (21, 2, 0.40), (22, 2, 0.30), (23, 2, 0.29)]
    assert [h[0] for h in diversify(hits)][:2] == [10, 20]
    boosted = diversify(hits, aggregate=0.1)
    assert [h[0] for h in boosted][:2] == [20, 10]
    assert {c: s for c, _, s in boosted}[20] == pytest.approx(0.48 + 0.1 * (0.40 + 0.30))
