"""Servers for the bench tests.

``paced_target`` is any OpenAI-compatible server whose TTFT and token rate are known: today the
fake server of ``fake_openai.py``; the gateway with ``engine: mock`` (options ``ttft_ms`` and
``tokens_per_second``) is a drop-in replacement, as the tests that use it only read the
``BenchTarget`` fields. ``fake`` is the fake server itself, for the tests that make it misbehave.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench_target import BenchTarget
from fake_openai import FakeBehaviour, FakeServer

PACED = FakeBehaviour(ttft_ms=100.0, tokens_per_second=50.0)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: FakeServer) -> FakeServer:
    """The fake server, reset to well-behaved and instant; a test may change ``state.behaviour``."""
    fake_server.state.reset(FakeBehaviour())
    return fake_server


@pytest.fixture
def paced_target(fake: FakeServer) -> BenchTarget:
    fake.state.reset(FakeBehaviour(ttft_ms=PACED.ttft_ms, tokens_per_second=PACED.tokens_per_second))
    return BenchTarget(
        base_url=fake.base_url,
        chat_model=fake.chat_model,
        embedding_model=fake.embedding_model,
        ttft_ms=PACED.ttft_ms,
        tokens_per_second=PACED.tokens_per_second,
    )
