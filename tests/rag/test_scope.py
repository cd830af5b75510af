"""The scope check: a question about a name the documents never use is not answered from them."""

from __future__ import annotations

import pytest

from nanoserve.rag.scope import name_like, unknown_names

POSTGRES_CHUNKS = [
    "REPLICA IDENTITY: this form changes the information written to the write-ahead log to identify rows",
    "ALTER SYSTEM SET wal_level = replica;",
    "PostgreSQL provides the index methods B-tree, hash, GiST, SP-GiST, GIN and BRIN.",
]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("How do I create a replica set in MongoDB?", ["MongoDB"]),
        ("How do I install software with Homebrew on macOS?", ["Homebrew", "macOS"]),
        ("How do I configure a load balancer in AWS?", ["AWS"]),
        ("Which index methods does PostgreSQL provide besides B-tree?", ["PostgreSQL", "B-tree"]),
        ("What does HEAD~2 mean?", ["HEAD"]),
        ("How do I bake sourdough bread?", []),  # nothing name-like: other checks decide
        ("Git: how do I ignore files? Where is the setting.", []),  # sentence starts are not names
    ],
)
def test_name_like(query: str, names: list[str]) -> None:
    assert name_like(query) == names


def test_unknown_names_are_the_ones_no_candidate_mentions() -> None:
    assert unknown_names("How do I create a replica set in MongoDB?", POSTGRES_CHUNKS) == ["MongoDB"]
    # case-insensitive, and hyphenated names match their parts too
    assert unknown_names("Which index methods does PostgreSQL provide besides B-tree?", POSTGRES_CHUNKS) == []
    assert unknown_names("How do I set the wal level for a replica?", POSTGRES_CHUNKS) == []
