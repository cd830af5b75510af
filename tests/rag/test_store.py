"""One store test suite, run against SQLite and against a real PostgreSQL with pgvector."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nanoserve.errors import BadRequest, Conflict, NotFound
from nanoserve.rag.store.base import NewChunk, NewDocument, ValueChanges, VectorStore
from nanoserve.rag.store.sqlite import SqliteStore

DIMS = 8
_counter = itertools.count()


@pytest.fixture(params=["sqlite", "pgvector"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    if request.param == "sqlite":
        from nanoserve.rag.store.sqlite import SqliteStore

        s: VectorStore = SqliteStore(tmp_path / "rag.db")
    else:
        import psycopg

        from nanoserve.rag.store.pgvector import PgVectorStore

        dsn = request.getfixturevalue("postgres_dsn")
        dbname = "t_" + uuid.uuid4().hex[:12]  # a fresh database per test
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {dbname}")
        s = PgVectorStore(dsn.replace("/postgres?", f"/{dbname}?"))
    yield s
    s.close()


def unit(*components: float) -> list[float]:
    v = np.zeros(DIMS)
    v[: len(components)] = components
    return list(v / np.linalg.norm(v))


def chunk(position: int, text: str, vec: list[float], section: str = "S") -> NewChunk:
    return NewChunk(
        position, text, section, position * 100, position * 100 + len(text), f"Doc > {section}\n{text}", vec
    )


def document(name: str, content_hash: str = "h1") -> NewDocument:
    return NewDocument(name, f"/src/{name}", name.title(), content_hash, "markdown", 100)


def test_collection_lifecycle(store: VectorStore) -> None:
    with pytest.raises(NotFound):
        store.get_collection("docs")
    info = store.ensure_collection("docs", DIMS, "emb")
    assert (info.name, info.dimensions, info.embedding_model, info.documents, info.chunks) == (
        "docs",
        DIMS,
        "emb",
        0,
        0,
    )
    assert store.ensure_collection("docs", DIMS, "emb").created_at == info.created_at  # idempotent
    with pytest.raises(Conflict):
        store.ensure_collection("docs", DIMS + 1, "other")
    store.ensure_collection("alpha", DIMS, "emb")
    assert [c.name for c in store.list_collections()] == ["alpha", "docs"]
    store.delete_collection("docs")
    assert [c.name for c in store.list_collections()] == ["alpha"]
    with pytest.raises(NotFound):
        store.delete_collection("docs")


@pytest.mark.parametrize("name", ["", "has space", "../etc", "x" * 65, "-lead"])
def test_bad_collection_names(store: VectorStore, name: str) -> None:
    with pytest.raises(BadRequest):
        store.ensure_collection(name, DIMS, "emb")


def test_replace_document_swaps_chunks_and_keeps_value(store: VectorStore) -> None:
    store.ensure_collection("docs", DIMS, "emb")
    first = store.replace_document(
        "docs", document("a.md"), [chunk(0, "alpha", unit(1)), chunk(1, "beta", unit(0, 1))]
    )
    assert first.chunks == 2 and first.title == "A.Md"
    old_ids = [h.chunk_id for h in store.dense_search("docs", unit(1), 10)]
    store.update_values(ValueChanges(documents={first.id: 0.4}))

    second = store.replace_document("docs", document("a.md", "h2"), [chunk(0, "gamma", unit(0, 0, 1))])
    assert second.id == first.id and second.chunks == 1 and second.content_hash == "h2"
    assert second.value == pytest.approx(0.4)  # the document keeps its learned value
    hits = store.dense_search("docs", unit(1), 10)
    assert len(hits) == 1 and hits[0].chunk_id not in old_ids  # chunk ids are never reused
    assert store.get_chunks(old_ids) == {}
    assert store.keyword_search("docs", ["alpha"], 10) == []
    assert store.get_collection("docs").chunks == 1


def test_replace_is_atomic(store: VectorStore) -> None:
    store.ensure_collection("docs", DIMS, "emb")
    store.replace_document("docs", document("a.md"), [chunk(0, "original text", unit(1))])
    bad = [chunk(0, "new text", unit(0, 1)), chunk(1, "wrong size", [1.0, 0.0])]  # second chunk fails
    with pytest.raises(Conflict):
        store.replace_document("docs", document("a.md", "h2"), bad)
    doc = store.get_document("docs", "a.md")
    assert doc is not None and doc.content_hash == "h1" and doc.chunks == 1
    (hit,) = store.dense_search("docs", unit(1), 10)
    assert store.get_chunks([hit.chunk_id])[hit.chunk_id].text == "original text"


def test_dense_search_orders_by_cosine(store: VectorStore) -> None:
    store.ensure_collection("docs", DIMS, "emb")
    store.replace_document(
        "docs",
        document("a.md"),
        [chunk(0, "x", unit(1, 0)), chunk(1, "y", unit(1, 1)), chunk(2, "z", unit(0, 1))],
    )
    hits = store.dense_search("docs", unit(1, 0.1), 3)
    texts = [store.get_chunks([h.chunk_id])[h.chunk_id].text for h in hits]
    assert texts == ["x", "y", "z"]
    assert hits[0].score == pytest.approx(float(np.dot(unit(1, 0), unit(1, 0.1))), abs=1e-5)
    assert hits[0].score > hits[1].score > hits[2].score
    assert len(store.dense_search("docs", unit(1), 2)) == 2
    with pytest.raises(Conflict):
        store.dense_search("docs", [1.0, 0.0], 2)


def test_keyword_search_stems_and_ranks(store: VectorStore) -> None:
    store.ensure_collection("docs", DIMS, "emb")
    store.replace_document(
        "docs",
        document("a.md"),
        [
            chunk(0, "Sorting lists with the sorted function and key functions.", unit(1)),
            chunk(1, "Weather today is sunny.", unit(0, 1)),
            chunk(2, "A list can be sorted in place by list.sort; sorting is stable.", unit(0, 0, 1)),
        ],
    )
    hits = store.keyword_search("docs", ["sort", "list"], 10)
    texts = {store.get_chunks([h.chunk_id])[h.chunk_id].text for h in hits}
    assert texts == {
        "Sorting lists with the sorted function and key functions.",
        "A list can be sorted in place by list.sort; sorting is stable.",
    }
    assert all(h.score > 0 for h in hits)
    assert store.keyword_search("docs", ['"quoted" OR weird*'], 10) == []  # terms are escaped
    assert store.keyword_search("docs", [], 10) == []
    # the title and section are indexed too: a short chunk is found by its heading's words
    store.replace_document("docs", document("b.md"), [chunk(0, "Nothing here.", unit(1), section="Weather")])
    assert {store.get_chunks([h.chunk_id])[h.chunk_id].text for h in store.keyword_search("docs", ["weather"], 10)} == {
        "Weather today is sunny.", "Nothing here."
    }  # fmt: skip


def test_a_heading_word_outranks_the_same_word_in_text(store: VectorStore) -> None:
    """When headings weigh more (pgvector: always; SQLite: keyword_weights, equal by default)."""
    if isinstance(store, SqliteStore):
        store.keyword_weights = (2.0, 2.0, 1.0)
    store.ensure_collection("docs", DIMS, "emb")
    filler = " ".join(["other words"] * 10)
    store.replace_document(
        "docs", document("a.md"), [chunk(0, f"Vacuum {filler}.", unit(1), section="Intro")]
    )
    store.replace_document(
        "docs", document("b.md"), [chunk(0, f"Cleaning {filler}.", unit(1), section="Vacuum")]
    )
    hits = store.keyword_search("docs", ["vacuum"], 10)
    assert [store.get_chunks([h.chunk_id])[h.chunk_id].section for h in hits] == ["Vacuum", "Intro"]


def test_collections_are_isolated(store: VectorStore) -> None:
    for name in ("one", "two"):
        store.ensure_collection(name, DIMS, "emb")
        store.replace_document(name, document("a.md"), [chunk(0, f"shared words {name}", unit(1))])
    hits = store.dense_search("one", unit(1), 10) + store.keyword_search("one", ["shared"], 10)
    assert {store.get_chunks([h.chunk_id])[h.chunk_id].text for h in hits} == {"shared words one"}
    store.delete_collection("one")
    assert len(store.keyword_search("two", ["shared"], 10)) == 1


def test_get_chunks_and_values(store: VectorStore) -> None:
    store.ensure_collection("docs", DIMS, "emb")
    info = store.replace_document("docs", document("a.md"), [chunk(0, "alpha", unit(1), section="Intro")])
    (hit,) = store.dense_search("docs", unit(1), 1)
    got = store.get_chunks([hit.chunk_id, 999_999])
    assert list(got) == [hit.chunk_id]
    c = got[hit.chunk_id]
    assert (c.document, c.source, c.title, c.section, c.position, c.text, c.start, c.end) == (
        "a.md",
        "/src/a.md",
        "A.Md",
        "Intro",
        0,
        "alpha",
        0,
        5,
    )
    assert (c.value, c.document_value) == (0.0, 0.0)
    assert store.list_values("docs", 10) == []
    store.update_values(ValueChanges(chunks={hit.chunk_id: 0.25}, documents={info.id: -0.5}))
    chunk_values, doc_values = store.values_of([hit.chunk_id])
    assert chunk_values == {hit.chunk_id: pytest.approx(0.25)} and doc_values == {
        info.id: pytest.approx(-0.5)
    }
    rows = store.list_values("docs", 10)
    assert [(r.kind, r.document, r.value, r.feedback) for r in rows] == [
        ("document", "a.md", pytest.approx(-0.5), 1),
        ("chunk", "a.md", pytest.approx(0.25), 1),
    ]


def test_documents_listing_and_delete(store: VectorStore) -> None:
    store.ensure_collection("docs", DIMS, "emb")
    store.replace_document("docs", document("b.md"), [chunk(0, "bee", unit(1))])
    store.replace_document(
        "docs", document("a.md"), [chunk(0, "ay", unit(0, 1)), chunk(1, "ay2", unit(1, 1))]
    )
    assert [(d.name, d.chunks) for d in store.list_documents("docs")] == [("a.md", 2), ("b.md", 1)]
    assert store.get_document("docs", "missing.md") is None
    store.delete_document("docs", "a.md")
    assert [d.name for d in store.list_documents("docs")] == ["b.md"]
    assert len(store.dense_search("docs", unit(1), 10)) == 1
    with pytest.raises(NotFound):
        store.delete_document("docs", "a.md")
    with pytest.raises(NotFound):
        store.list_documents("nope")


def test_sqlite_store_of_the_shared_single_column_layout_is_migrated(tmp_path: Path) -> None:
    """A store written when one FTS5 table with one body column indexed every collection is
    rebuilt, a keyword index per collection with title and section columns, when opened."""
    from nanoserve.rag.store.sqlite import SqliteStore

    old = SqliteStore(tmp_path / "rag.db")
    for name in ("docs", "other"):
        old.ensure_collection(name, DIMS, "emb")
        old.replace_document(
            name, document("guide.md"), [chunk(0, f"Run the vacuum {name}.", unit(1), "Upkeep")]
        )
    with old._transaction() as db:  # back to the earlier layout
        for (cid,) in db.execute("SELECT id FROM collections").fetchall():
            db.execute(f"DROP TABLE fts_{cid}")
        db.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5(body, collection_id UNINDEXED, tokenize = 'porter unicode61')"
        )
        db.execute(
            "INSERT INTO chunks_fts (rowid, body, collection_id) "
            "SELECT id, 'Guide.Md > Upkeep' || char(10) || text, collection_id FROM chunks"
        )
    old.close()

    store = SqliteStore(tmp_path / "rag.db")
    try:
        tables = {r[0] for r in store._rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "chunks_fts" not in tables
        for name in ("docs", "other"):
            for word in ("guide", "upkeep", "vacuum", name):
                hits = store.keyword_search(name, [word], 10)
                assert len(hits) == 1, (name, word)
            assert store.keyword_search(name, ["other" if name == "docs" else "docs"], 10) == []
        store.delete_collection("other")
        assert len(store.keyword_search("docs", ["vacuum"], 10)) == 1
    finally:
        store.close()


def test_keyword_scores_of_a_collection_do_not_depend_on_other_collections(store: VectorStore) -> None:
    store.ensure_collection("docs", DIMS, "emb")
    store.replace_document("docs", document("a.md"), [chunk(0, "Vacuum the table weekly.", unit(1))])
    store.replace_document("docs", document("b.md"), [chunk(0, "The table of contents.", unit(1))])
    before = [(h.chunk_id, h.score) for h in store.keyword_search("docs", ["vacuum", "table"], 10)]
    store.ensure_collection("big", DIMS, "emb")
    store.replace_document(
        "big", document("c.md"), [chunk(i, f"Vacuum vacuum note {i}.", unit(1)) for i in range(30)]
    )
    after = [(h.chunk_id, h.score) for h in store.keyword_search("docs", ["vacuum", "table"], 10)]
    assert after == before
