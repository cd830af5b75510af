"""Synthetic prompts and arrival times: controlled sizes, deterministic for a seed."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from nanoserve.bench.workload import WORDS, arrival_offsets, derive_seed, make_prompts


def test_prompts_have_the_requested_shape() -> None:
    prompts = make_prompts(5, input_len=12, output_len=7, seed=1, batch_size=3)
    assert len(prompts) == 5
    for prompt in prompts:
        assert len(prompt.texts) == 3
        assert all(len(text.split()) == 12 for text in prompt.texts)
        assert all(word in WORDS for text in prompt.texts for word in text.split())
        assert prompt.approx_tokens == 36
        assert prompt.max_tokens == 7


def test_prompts_are_deterministic_for_a_seed_and_differ_across_seeds() -> None:
    a = make_prompts(4, input_len=20, output_len=1, seed=7)
    assert a == make_prompts(4, input_len=20, output_len=1, seed=7)
    assert a != make_prompts(4, input_len=20, output_len=1, seed=8)


def test_prompts_do_not_share_a_prefix() -> None:
    prompts = make_prompts(20, input_len=16, output_len=1, seed=0)
    assert len({tuple(p.text.split()[:4]) for p in prompts}) == 20


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {"num_prompts": 0, "input_len": 5, "output_len": 1},
        {"num_prompts": 1, "input_len": 0, "output_len": 1},
        {"num_prompts": 1, "input_len": 5, "output_len": -1},
        {"num_prompts": 1, "input_len": 5, "output_len": 1, "batch_size": 0},
    ],
)
def test_make_prompts_rejects_empty_shapes(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        make_prompts(seed=0, **kwargs)


def test_infinite_rate_sends_everything_at_once() -> None:
    assert arrival_offsets(4, math.inf, seed=0) == [0.0, 0.0, 0.0, 0.0]


def test_poisson_arrivals_have_the_requested_mean_rate() -> None:
    offsets = arrival_offsets(4000, 20.0, seed=3)
    assert offsets[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert all(gap >= 0 for gap in gaps)
    assert statistics.fmean(gaps) == pytest.approx(1 / 20.0, rel=0.05)
    # exponential gaps: the standard deviation equals the mean
    assert statistics.pstdev(gaps) == pytest.approx(1 / 20.0, rel=0.1)
    assert offsets == arrival_offsets(4000, 20.0, seed=3)
    assert offsets != arrival_offsets(4000, 20.0, seed=4)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan])
def test_arrivals_reject_a_non_positive_rate(rate: float) -> None:
    with pytest.raises(ValueError):
        arrival_offsets(3, rate, seed=0)


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derive_seed(0, "prompts", 4) == derive_seed(0, "prompts", 4)
    seeds = {derive_seed(0, "prompts", c) for c in (None, 1, 2, 4)} | {derive_seed(1, "prompts", 4)}
    assert len(seeds) == 5
