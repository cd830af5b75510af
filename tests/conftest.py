from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gateway import MOCK_CONFIG, Gateway
from tiny_reranker import build_tiny_reranker


@pytest.fixture(scope="session")
def real_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The gateway with the built-in default models (real weights, real workers)."""
    gw = Gateway(tmp_path_factory.mktemp("real"))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def mock_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("mock"), MOCK_CONFIG)
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cross-encoder trained to rank documents about llamas first (tests/tiny_reranker.py)."""
    return build_tiny_reranker(tmp_path_factory.mktemp("tiny-reranker"))
