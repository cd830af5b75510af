"""Replica choice and replica counts are pure decisions: tables of cases."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from nanoserve.config import ReplicaSettings
from nanoserve.orchestrator.router import (
    Affinity,
    Candidate,
    PrefixTable,
    choose,
    matched_blocks,
    prefix_blocks,
)
from nanoserve.orchestrator.scaling import GroupLoad, desired_replicas, replica_to_remove

SYSTEM = "You are a careful assistant. " * 40  # ~1100 characters: 8 blocks


def cands(*outstanding: int) -> list[Candidate]:
    return [Candidate(i, n) for i, n in enumerate(outstanding)]


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ([], None),
        (cands(7), 0),  # the only ready one, however busy
        (cands(3, 1), 1),  # two replicas: the less busy one
        (cands(1, 3), 0),
    ],
)
def test_least_outstanding(candidates: list[Candidate], expected: int | None) -> None:
    assert choose(candidates, rng=random.Random(1)) == expected


def test_power_of_two_choices_never_picks_the_busiest_of_three() -> None:
    rng = random.Random(7)
    picks = Counter(choose(cands(0, 5, 9), rng=rng) for _ in range(300))
    assert picks[2] == 0 and picks[0] > picks[1] > 0


def test_a_session_stays_on_one_replica_and_sessions_spread() -> None:
    ready = cands(0, 0, 0)
    homes = {s: choose(ready, Affinity(session=s)) for s in (f"user-{i}" for i in range(60))}
    assert all(choose(cands(9, 0, 0), Affinity(session=s)) == homes[s] for s in homes)  # load ignored
    assert set(Counter(homes.values())) == {0, 1, 2}


def test_removing_a_replica_moves_only_its_sessions() -> None:
    homes = {s: choose(cands(0, 0, 0), Affinity(session=s)) for s in (f"u{i}" for i in range(90))}
    after = {s: choose([Candidate(0, 0), Candidate(1, 0)], Affinity(session=s)) for s in homes}
    assert all(after[s] == homes[s] for s in homes if homes[s] != 2)


def test_prefix_blocks_chain_and_drop_the_partial_tail() -> None:
    blocks = prefix_blocks("a" * 300, block_chars=128)
    assert len(blocks) == 2
    assert prefix_blocks("a" * 256 + "different tail", block_chars=128) == blocks
    assert prefix_blocks("b" + "a" * 299, block_chars=128)[1] != blocks[1]  # a block covers those before


@pytest.mark.parametrize(
    ("outstanding", "prompt", "expected"),
    [
        ((0, 0), SYSTEM + "question one", 1),  # the replica that saw the system prompt
        ((3, 0), SYSTEM + "question two", 1),  # busier by 3: still within the imbalance limit
        ((0, 9), SYSTEM + "question three", 0),  # busier by 9: load wins
        ((2, 0), SYSTEM[:400] + "short shared prefix", 1),  # 3 blocks < the minimum: least busy
        ((0, 2), SYSTEM[:400] + "short shared prefix", 0),
    ],
)
def test_prefix_affinity(outstanding: tuple[int, int], prompt: str, expected: int) -> None:
    table = PrefixTable()
    table.record(prefix_blocks(SYSTEM + "an earlier question"), 1)
    assert choose(cands(*outstanding), Affinity(prefix_blocks=prefix_blocks(prompt)), table.seen) == expected


def test_prefix_table_is_bounded_and_forgets_a_stopped_replica() -> None:
    table = PrefixTable(capacity=4)
    table.record([1, 2, 3], 0)
    table.record([4, 5], 1)
    assert len(table) == 4 and 1 not in table.seen
    table.forget(1)
    assert set(table.seen) == {2, 3}
    assert matched_blocks([2, 3, 9], table.seen, 0) == 2


AUTO = ReplicaSettings(min=0, max=3, scale_up_queue_wait_ms=500, scale_up_after_s=10, scale_down_idle_s=60)


@pytest.mark.parametrize(
    ("load", "settings", "want"),
    [
        (GroupLoad(live=0, queued=0, pressure_for=0, since_scaled=99), AUTO, 0),  # on demand
        (GroupLoad(live=0, queued=0, pressure_for=0, since_scaled=99), ReplicaSettings(min=2, max=3), 2),
        (GroupLoad(live=1, queued=4, pressure_for=0.6, since_scaled=99), AUTO, 2),  # queued long enough
        (GroupLoad(live=1, queued=4, pressure_for=0.2, since_scaled=99), AUTO, 1),  # not yet
        (GroupLoad(live=2, queued=4, pressure_for=5.0, since_scaled=3), AUTO, 2),  # the last one is new
        (GroupLoad(live=3, queued=9, pressure_for=9.0, since_scaled=99), AUTO, 3),  # at max
        (GroupLoad(live=2, queued=0, pressure_for=0, since_scaled=99, idle_extras=((1, 61.0),)), AUTO, 1),
        (GroupLoad(live=2, queued=0, pressure_for=0, since_scaled=99, idle_extras=((1, 30.0),)), AUTO, 2),
        (
            GroupLoad(live=1, queued=0, pressure_for=0, since_scaled=99),
            AUTO,
            1,
        ),  # the first follows keep_alive
        (
            GroupLoad(live=2, queued=0, pressure_for=0, since_scaled=99, idle_extras=((1, 99.0),)),
            ReplicaSettings(min=2, max=3),
            2,
        ),
        (GroupLoad(live=1, queued=0, pressure_for=0, since_scaled=0, target=4), AUTO, 4),  # by hand
    ],
)
def test_desired_replicas(load: GroupLoad, settings: ReplicaSettings, want: int) -> None:
    assert desired_replicas(load, settings) == want


def test_the_longest_idle_extra_goes_first() -> None:
    load = GroupLoad(live=3, queued=0, pressure_for=0, since_scaled=99, idle_extras=((1, 70.0), (2, 90.0)))
    assert replica_to_remove(load) == 2
    assert replica_to_remove(GroupLoad(live=1, queued=0, pressure_for=0, since_scaled=0)) is None
