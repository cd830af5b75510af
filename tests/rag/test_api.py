"""The REST API end to end with the real default models: ingest, query with citations, traces,
feedback that moves values and ranking, metrics, and bad inputs rejected clearly."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from conftest import DATA, RagServer
from pdfmaker import make_pdf

CORPUS = DATA / "corpus"
NOT_IN_DOCUMENTS = "I could not find this in the documents."


def new_collection() -> str:
    return "t-" + uuid.uuid4().hex[:10]


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def upload(client: httpx.Client, collection: str, name: str, data: bytes, **fields: str) -> dict[str, Any]:
    response = client.post(
        f"/v1/rag/collections/{collection}/documents", files={"file": (name, data)}, data=fields
    )
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def client(rag_server: RagServer) -> Any:
    with rag_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def corpus(client: httpx.Client) -> str:
    """A collection with the test corpus in every format: Markdown, HTML, text, PDF, raw text."""
    collection = new_collection()
    for path in sorted(CORPUS.iterdir()):
        assert upload(client, collection, path.name, path.read_bytes())["status"] == "created"
    pdf = make_pdf(
        [["Telescope collimation", "", "Collimate the telescope by aligning the secondary mirror first,",
          "then adjust the three primary mirror screws until the star image is a round ring."]],
        title="Collimation guide",
    )  # fmt: skip
    result = upload(client, collection, "collimation.pdf", pdf)
    assert (result["title"], result["chunks"]) == ("Collimation guide", 1)
    raw = {
        "name": "espresso.md",
        "text": "# Espresso\n\n## Grind\n\nGrind espresso beans very fine, like table salt.",
    }
    assert ok(client.post(f"/v1/rag/collections/{collection}/documents", json=raw), 201)["chunks"] == 1
    return collection


def test_collections_list_their_documents(client: httpx.Client, corpus: str) -> None:
    listed = {c["name"]: c for c in ok(client.get("/v1/rag/collections"))["data"]}
    assert listed[corpus]["documents"] == 6 and listed[corpus]["dimensions"] == 384
    detail = ok(client.get(f"/v1/rag/collections/{corpus}"))
    names = {d["name"]: d for d in detail["documents_list"]}
    assert set(names) == {"green-tea.md", "bicycle-maintenance.md", "sourdough.html", "release-notes.txt",
                          "collimation.pdf", "espresso.md"}  # fmt: skip
    assert names["sourdough.html"]["title"] == "Sourdough starter guide"
    assert names["green-tea.md"]["chunks"] == 4


def test_search_finds_sections_of_the_right_document(client: httpx.Client, corpus: str) -> None:
    for strategy in ("semantic", "keyword", "hybrid"):
        found = ok(client.post("/v1/rag/search", json={"collection": corpus, "query": "how to feed a sourdough starter",
                                                       "strategy": strategy, "top_k": 3}))  # fmt: skip
        assert found["strategy"] == strategy
        top = found["results"][0]
        assert (top["document"], top["section"]) == ("sourdough.html", "Feeding the starter"), strategy
    # the HTML's navigation, script and footer were not indexed
    junk = ok(client.post("/v1/rag/search", json={"collection": corpus, "query": "Copyright console.log Recipes",
                                                  "strategy": "keyword"}))  # fmt: skip
    assert junk["results"] == []


def test_query_answers_with_citations_to_real_chunks(client: httpx.Client, corpus: str) -> None:
    result = ok(
        client.post(
            "/v1/rag/query",
            json={"collection": corpus, "query": "How hot should the water be for green tea?"},
        )
    )
    assert result["answer_mode"] in ("generated", "extractive")
    assert result["citations"], result
    assert result["citations"][0]["document"] == "green-tea.md"
    assert "[1]" in result["answer"]
    for n, citation in enumerate(result["citations"], start=1):
        assert citation["n"] == n and f"[{n}]" in result["answer"]
    assert set(result["quality"]) == {
        "overall",
        "relevance",
        "grounding",
        "citation_validity",
        "coverage",
        "retrieval",
        "question_coverage",
    }
    assert result["quality"]["citation_validity"] == 1.0 and result["quality"]["retrieval"] > 0.5
    assert {"embed", "intent", "retrieve", "generate", "cite", "quality", "total"} <= set(
        result["timings_ms"]
    )

    # every citation is a chunk that exists, with its exact text, and was retrieved for this query
    trace = ok(client.get(f"/v1/rag/traces/{result['trace_id']}"))
    retrieved = {c["chunk_id"]: c for c in trace["retrieved"]}
    search = ok(client.post("/v1/rag/search", json={"collection": corpus, "query": "green tea", "top_k": 50}))
    stored = {r["chunk_id"]: r["text"] for r in search["results"]}
    for citation in result["citations"]:
        assert citation["chunk_id"] in retrieved
        assert retrieved[citation["chunk_id"]]["citation"] == citation["n"]
        assert stored[citation["chunk_id"]] == citation["text"]
    assert "70 and 80 degrees" in " ".join(c["text"] for c in result["citations"])

    # the trace: phases with timings, retrieved chunks with scores, answer, quality
    assert trace["id"] == result["trace_id"] and trace["status"] == "ok"
    assert [p["name"] for p in trace["phases"]] == [
        "embed",
        "intent",
        "retrieve",
        "generate",
        "cite",
        "quality",
    ]
    assert all(p["ms"] >= 0 for p in trace["phases"])
    assert trace["answer"] == result["answer"] and trace["quality"] == result["quality"]
    assert trace["generated"] and trace["intent"]["name"] == result["intent"]
    assert all(isinstance(c["score"], float) and c["text"] for c in trace["retrieved"])


def test_out_of_scope_question_is_refused(client: httpx.Client, corpus: str) -> None:
    result = ok(
        client.post(
            "/v1/rag/query", json={"collection": corpus, "query": "Who won the football world cup in 2018?"}
        )
    )
    assert result["answer"] == NOT_IN_DOCUMENTS and result["answer_mode"] == "refused"
    assert result["citations"] == [] and "generate" not in result["timings_ms"]
    trace = ok(client.get(f"/v1/rag/traces/{result['trace_id']}"))
    assert trace["status"] == "refused" and trace["answerable"] is False


def test_reingest_replaces_changed_documents_only(client: httpx.Client) -> None:
    collection = new_collection()
    first = upload(client, collection, "notes.md", b"# Notes\n\nThe gate code is 4711.")
    assert first["status"] == "created"
    assert (
        upload(client, collection, "notes.md", b"# Notes\n\nThe gate code is 4711.")["status"] == "unchanged"
    )
    second = upload(
        client,
        collection,
        "notes.md",
        b"# Notes\n\nThe gate code is 9090.\n\n## Parking\n\nPark on level two.",
    )
    assert (second["status"], second["chunks"]) == ("updated", 2)
    texts = [r["text"] for r in ok(client.post("/v1/rag/search", json={"collection": collection, "query": "gate code",
                                                                      "strategy": "keyword"}))["results"]]  # fmt: skip
    assert texts == ["The gate code is 9090."]
    assert ok(client.get(f"/v1/rag/collections/{collection}"))["chunks"] == 2
    ok(client.delete(f"/v1/rag/collections/{collection}/documents/notes.md"))
    assert ok(client.get(f"/v1/rag/collections/{collection}"))["documents"] == 0
    assert ok(client.delete(f"/v1/rag/collections/{collection}"))["deleted"] is True
    assert client.get(f"/v1/rag/collections/{collection}").status_code == 404


def test_feedback_moves_values_and_reorders_near_ties(client: httpx.Client) -> None:
    """Two near-identical guides rank within a hair of each other; a bad rating on the answer
    that used the first moves it below the second, by a bounded factor."""
    collection = new_collection()
    for path in sorted((DATA / "ties").iterdir()):
        upload(client, collection, path.name, path.read_bytes())
    question = {
        "collection": collection,
        "query": "How do I reset the widget controller?",
        "strategy": "semantic",
    }

    def ranking() -> list[dict[str, Any]]:
        return ok(client.post("/v1/rag/search", json={**question, "top_k": 2}))["results"]  # type: ignore[no-any-return]

    before = ranking()
    assert [r["score"] for r in before] == [r["base_score"] for r in before]  # no values yet
    first, second = before
    assert first["base_score"] - second["base_score"] < 0.05 * first["base_score"]  # a near tie

    answer = ok(client.post("/v1/rag/query", json={**question, "top_k": 1}))
    trace = ok(client.get(f"/v1/rag/traces/{answer['trace_id']}"))
    assert [c["chunk_id"] for c in trace["retrieved"]] == [first["chunk_id"]]
    feedback = ok(client.post("/v1/rag/feedback", json={"trace_id": answer["trace_id"], "rating": -1}))
    assert [(u["id"], u["credit"]) for u in feedback["chunks"]] == [(first["chunk_id"], 1.0)]
    assert feedback["chunks"][0]["new"] < 0

    values = ok(client.get("/v1/rag/values", params={"collection": collection}))
    assert [(v["id"], v["value"] < 0) for v in values["chunks"]] == [(first["chunk_id"], True)]
    assert [v["document"] for v in values["documents"]] == [first["document"]]

    after = {r["chunk_id"]: r for r in ranking()}
    assert [r["chunk_id"] for r in ranking()] == [second["chunk_id"], first["chunk_id"]]  # reordered
    demoted = after[first["chunk_id"]]
    assert demoted["base_score"] == pytest.approx(first["base_score"], abs=1e-5)
    assert 0.85 <= demoted["score"] / demoted["base_score"] < 1.0  # bounded by value_strength

    again = client.post("/v1/rag/feedback", json={"trace_id": answer["trace_id"], "rating": 1})
    assert again.status_code == 409


def test_metrics_count_queries_per_collection(client: httpx.Client, corpus: str) -> None:
    ok(client.post("/v1/rag/query", json={"collection": corpus, "query": "What is the capital of Peru?"}))
    metrics = {m["collection"]: m for m in ok(client.get("/v1/rag/metrics"))["data"]}
    mine = metrics[corpus]
    assert mine["queries"] >= 1 and mine["queries"] == mine["answered"] + mine["refused"] + mine["errors"]
    assert 0.0 <= mine["success_rate"] <= 1.0 and mine["latency_ms"]["p95"] >= mine["latency_ms"]["p50"] > 0
    assert "overall" in mine["quality"]
    only = ok(client.get("/v1/rag/metrics", params={"collection": corpus}))["data"]
    assert [m["collection"] for m in only] == [corpus]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("POST", "/v1/rag/query", {"collection": "default"}, 400, "query"),
        ("POST", "/v1/rag/query", {"query": "   "}, 400, "query"),
        ("POST", "/v1/rag/query", {"query": "x", "strategy": "magic"}, 400, "strategy"),
        ("POST", "/v1/rag/query", {"query": "x", "top_k": 0}, 400, "top_k"),
        ("POST", "/v1/rag/query", {"query": "x", "temperature": 1}, 400, "temperature"),
        ("POST", "/v1/rag/query", {"query": "x", "collection": "no-such-collection"}, 404, "collection"),
        ("POST", "/v1/rag/query", [1, 2], 400, None),
        ("POST", "/v1/rag/feedback", {"trace_id": "tr_missing", "rating": 1}, 404, "trace_id"),
        ("POST", "/v1/rag/feedback", {"trace_id": "tr_x", "rating": 2}, 400, "rating"),
        ("POST", "/v1/rag/collections/bad name/documents", {"name": "a.md", "text": "x"}, 400, "collection"),
        ("POST", "/v1/rag/collections/c/documents", {"name": "a.md", "text": " \n "}, 400, "text"),
        ("POST", "/v1/rag/collections/c/documents", {"text": "hello"}, 400, "name"),
        (
            "POST",
            "/v1/rag/collections/c/documents",
            {"name": "a.pdf", "text": "x", "format": "pdf"},
            400,
            "format",
        ),
        ("GET", "/v1/rag/traces/tr_does_not_exist", None, 404, "trace_id"),
        ("GET", "/v1/rag/collections/no-such-collection", None, 404, "collection"),
        ("DELETE", "/v1/rag/collections/no-such-collection", None, 404, "collection"),
        ("GET", "/v1/rag/values?collection=x&limit=0", None, 400, "limit"),
        ("GET", "/v1/rag/values?collection=x&limit=many", None, 400, "limit"),
    ],
)
def test_bad_inputs_are_rejected_clearly(
    client: httpx.Client, method: str, path: str, body: Any, status: int, param: str | None
) -> None:
    response = client.request(method, path, json=body) if body is not None else client.request(method, path)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["param"] == param


def test_invalid_json_and_uploads_are_rejected(client: httpx.Client) -> None:
    response = client.post(
        "/v1/rag/query", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    binary = client.post(
        "/v1/rag/collections/c/documents", files={"file": ("blob.txt", b"\x00\x01\x02" * 100)}
    )
    assert binary.status_code == 400 and "binary" in binary.json()["error"]["message"]
    broken_pdf = client.post(
        "/v1/rag/collections/c/documents", files={"file": ("x.pdf", b"%PDF-1.4 garbage")}
    )
    assert broken_pdf.status_code == 400 and "PDF" in broken_pdf.json()["error"]["message"]
    no_file = client.post("/v1/rag/collections/c/documents", files={"other": ("a.txt", b"text")})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    empty = client.post("/v1/rag/collections/c/documents", json={"name": "e.md", "text": "# Only a heading"})
    assert empty.status_code == 400 and "no text" in empty.json()["error"]["message"]
    assert json.loads(client.get("/v1/rag/collections/c").text)["error"]["code"] == "not_found"
