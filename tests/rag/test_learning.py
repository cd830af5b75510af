from __future__ import annotations

import random

import pytest

from nanoserve.rag.learning import UsedChunk, assign_credit, credits, update_value


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        ([], {}),
        # cited chunks: 1 / citation number, normalised; uncited get a quarter of their rank share
        (
            [UsedChunk(1, 1, 1, 1), UsedChunk(2, 1, 2, 2), UsedChunk(3, 2, 3, None)],
            {1: 1.0, 2: 0.5, 3: 0.25 / 3},
        ),
        # no citations at all: credit by retrieval rank
        ([UsedChunk(1, 1, 1, None), UsedChunk(2, 1, 2, None)], {1: 1.0, 2: 0.5}),
        # the citation counts even for a chunk retrieved lower
        ([UsedChunk(1, 1, 1, None), UsedChunk(2, 1, 2, 1)], {2: 1.0, 1: 0.25}),
    ],
)
def test_credits(used: list[UsedChunk], expected: dict[int, float]) -> None:
    got = credits(used)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value)


@pytest.mark.parametrize(
    ("old", "rating", "credit", "rate", "new"),
    [
        (0.0, 1.0, 1.0, 0.3, 0.3),
        (0.0, -1.0, 1.0, 0.3, -0.3),
        (0.5, 1.0, 0.5, 0.4, 0.6),
        (0.3, 0.3, 1.0, 0.3, 0.3),  # a rating equal to the value changes nothing
        (0.9, -1.0, 0.0, 0.3, 0.9),  # no credit, no change
    ],
)
def test_update_value(old: float, rating: float, credit: float, rate: float, new: float) -> None:
    assert update_value(old, rating, credit, rate) == pytest.approx(new)


def test_values_stay_bounded_under_any_feedback_sequence() -> None:
    rng = random.Random(7)
    value = 0.0
    for _ in range(10_000):
        value = update_value(value, rng.choice([-1.0, 1.0, rng.uniform(-1, 1)]), rng.random(), 1.0)
        assert -1.0 <= value <= 1.0


def test_repeated_praise_converges_to_the_rating() -> None:
    value = 0.0
    for _ in range(50):
        value = update_value(value, 0.8, 1.0, 0.3)
    assert value == pytest.approx(0.8, abs=1e-6)


def test_assign_credit_updates_chunks_and_documents() -> None:
    used = [UsedChunk(1, 10, 1, 1), UsedChunk(2, 10, 2, None), UsedChunk(3, 20, 3, 2)]
    result = assign_credit(used, 1.0, {1: 0.0, 2: 0.0, 3: 0.5}, {10: 0.0, 20: 0.0}, rate=0.5)
    chunks = {u.id: u for u in result.chunks}
    docs = {u.id: u for u in result.documents}
    assert chunks[1].new == pytest.approx(0.5)
    assert chunks[3].new == pytest.approx(0.5 + 0.5 * 0.5 * 0.5)
    assert 0 < chunks[2].new < chunks[1].new
    assert docs[10].credit == 1.0 and docs[20].credit == pytest.approx(0.5)


def test_rating_out_of_range() -> None:
    with pytest.raises(ValueError):
        assign_credit([], 1.5, {}, {})
