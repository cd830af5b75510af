"""PostgreSQL + pgvector: the store for collections that outgrow one SQLite file.

Vectors live in one ``vector`` column of any dimension; each collection gets its own partial HNSW
index on ``embedding::vector(dims)`` (cosine), and searches use the same expression so the planner
can use it. Keywords: a generated, weighted ``tsvector`` column (title and section weigh more than
body text) with a GIN index, ranked by ``ts_rank_cd``. Uses psycopg 3 synchronously from worker
threads; one connection guarded by a lock, one transaction per write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from nanoserve.errors import Conflict, NotFound, Unavailable
from nanoserve.rag.store.base import (
    CollectionInfo,
    DocumentInfo,
    Hit,
    NewChunk,
    NewDocument,
    StoredChunk,
    ValueChanges,
    ValueRow,
    VectorStore,
    check_collection_name,
)

_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS rag_collections (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    dimensions INTEGER NOT NULL,
    embedding_model TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS rag_documents (
    id BIGSERIAL PRIMARY KEY,
    collection_id BIGINT NOT NULL REFERENCES rag_collections(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    format TEXT NOT NULL,
    chars INTEGER NOT NULL,
    value DOUBLE PRECISION NOT NULL DEFAULT 0,
    feedback INTEGER NOT NULL DEFAULT 0,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (collection_id, name)
);
CREATE TABLE IF NOT EXISTS rag_chunks (
    id BIGSERIAL PRIMARY KEY,
    document_id BIGINT NOT NULL REFERENCES rag_documents(id) ON DELETE CASCADE,
    collection_id BIGINT NOT NULL,
    position INTEGER NOT NULL,
    section TEXT NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    value DOUBLE PRECISION NOT NULL DEFAULT 0,
    feedback INTEGER NOT NULL DEFAULT 0,
    embedding vector NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', heading), 'A') || setweight(to_tsvector('english', text), 'B')
    ) STORED
);
CREATE INDEX IF NOT EXISTS rag_chunks_document ON rag_chunks (document_id);
CREATE INDEX IF NOT EXISTS rag_chunks_collection ON rag_chunks (collection_id);
CREATE INDEX IF NOT EXISTS rag_chunks_tsv ON rag_chunks USING gin (tsv);
"""

_CHUNK_SELECT = """
SELECT c.id, c.document_id, d.name, d.source, d.title, c.section, c.position, c.text, c.start_char,
       c.end_char, c.value, d.value
FROM rag_chunks c JOIN rag_documents d ON d.id = c.document_id
"""


def _vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def _heading(index_text: str, text: str) -> str:
    """The title/section header that ``embedding_text`` put in front of the chunk text."""
    return index_text[: -len(text)].strip() if index_text.endswith(text) else ""


class PgVectorStore(VectorStore):
    backend = "pgvector"

    def __init__(self, dsn: str):
        import psycopg

        self._psycopg = psycopg
        self._lock = threading.RLock()
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError as exc:
            raise Unavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(7201)")  # one schema creator at a time
            self._db.execute(_SCHEMA)

    # --- plumbing -------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock, self._db.transaction():
            yield self._db

    def _collection_row(self, name: str) -> tuple[int, int]:
        rows = self._rows("SELECT id, dimensions FROM rag_collections WHERE name = %s", (name,))
        if not rows:
            raise NotFound(f"collection {name!r} does not exist", param="collection")
        return int(rows[0][0]), int(rows[0][1])

    # --- collections ----------------------------------------------------------------------------

    def ensure_collection(self, name: str, dimensions: int, embedding_model: str) -> CollectionInfo:
        check_collection_name(name)
        with self._transaction() as db:
            db.execute("LOCK TABLE rag_collections IN SHARE ROW EXCLUSIVE MODE")
            row = db.execute(
                "SELECT id, dimensions, embedding_model FROM rag_collections WHERE name = %s", (name,)
            ).fetchone()
            if row is None:
                cid = db.execute(
                    """INSERT INTO rag_collections (name, dimensions, embedding_model, created_at)
                       VALUES (%s, %s, %s, %s) RETURNING id""",
                    (name, dimensions, embedding_model, time.time()),
                ).fetchone()[0]
                db.execute(
                    f"CREATE INDEX rag_chunks_vec_{int(cid)} ON rag_chunks USING hnsw "
                    f"((embedding::vector({int(dimensions)})) vector_cosine_ops) WHERE collection_id = {int(cid)}"
                )
            elif row[1] != dimensions:
                raise Conflict(
                    f"collection {name!r} holds {row[1]}-dimensional vectors ({row[2]}); "
                    f"got {dimensions} dimensions: use another collection or delete this one",
                    param="collection",
                )
        return self.get_collection(name)

    def get_collection(self, name: str) -> CollectionInfo:
        rows = self._rows(
            """SELECT c.name, c.dimensions, c.embedding_model, c.created_at,
                      (SELECT COUNT(*) FROM rag_documents d WHERE d.collection_id = c.id),
                      (SELECT COUNT(*) FROM rag_chunks k WHERE k.collection_id = c.id)
               FROM rag_collections c WHERE c.name = %s""",
            (name,),
        )
        if not rows:
            raise NotFound(f"collection {name!r} does not exist", param="collection")
        n, dims, model, created, docs, chunks = rows[0]
        return CollectionInfo(n, int(dims), model, int(docs), int(chunks), float(created))

    def list_collections(self) -> list[CollectionInfo]:
        names = self._rows("SELECT name FROM rag_collections ORDER BY name")
        return [self.get_collection(name) for (name,) in names]

    def delete_collection(self, name: str) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT id FROM rag_collections WHERE name = %s", (name,)).fetchone()
            if row is None:
                raise NotFound(f"collection {name!r} does not exist", param="collection")
            cid = int(row[0])
            db.execute(f"DROP INDEX IF EXISTS rag_chunks_vec_{cid}")
            db.execute("DELETE FROM rag_chunks WHERE collection_id = %s", (cid,))
            db.execute("DELETE FROM rag_collections WHERE id = %s", (cid,))

    # --- documents ------------------------------------------------------------------------------

    _DOC_SELECT = """SELECT d.id, d.name, d.source, d.title, d.content_hash, d.format, d.chars,
                            (SELECT COUNT(*) FROM rag_chunks k WHERE k.document_id = d.id), d.value, d.updated_at
                     FROM rag_documents d"""

    @staticmethod
    def _doc(collection: str, r: tuple[Any, ...]) -> DocumentInfo:
        return DocumentInfo(
            int(r[0]),
            collection,
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            int(r[6]),
            int(r[7]),
            float(r[8]),
            float(r[9]),
        )

    def get_document(self, collection: str, name: str) -> DocumentInfo | None:
        cid, _ = self._collection_row(collection)
        rows = self._rows(self._DOC_SELECT + " WHERE d.collection_id = %s AND d.name = %s", (cid, name))
        return self._doc(collection, rows[0]) if rows else None

    def list_documents(self, collection: str) -> list[DocumentInfo]:
        cid, _ = self._collection_row(collection)
        rows = self._rows(self._DOC_SELECT + " WHERE d.collection_id = %s ORDER BY d.name", (cid,))
        return [self._doc(collection, r) for r in rows]

    def replace_document(
        self, collection: str, document: NewDocument, chunks: Sequence[NewChunk]
    ) -> DocumentInfo:
        cid, dims = self._collection_row(collection)
        for chunk in chunks:
            if len(chunk.embedding) != dims:
                raise Conflict(
                    f"collection {collection!r} expects {dims}-dimensional vectors, got {len(chunk.embedding)}"
                )
        now = time.time()
        with self._transaction() as db:
            doc_id = db.execute(
                """INSERT INTO rag_documents (collection_id, name, source, title, content_hash, format, chars, updated_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (collection_id, name) DO UPDATE SET source = EXCLUDED.source,
                       title = EXCLUDED.title, content_hash = EXCLUDED.content_hash, format = EXCLUDED.format,
                       chars = EXCLUDED.chars, updated_at = EXCLUDED.updated_at
                   RETURNING id""",
                (
                    cid,
                    document.name,
                    document.source,
                    document.title,
                    document.content_hash,
                    document.format,
                    document.chars,
                    now,
                ),
            ).fetchone()[0]
            db.execute("DELETE FROM rag_chunks WHERE document_id = %s", (doc_id,))
            with db.cursor() as cur:
                cur.executemany(
                    """INSERT INTO rag_chunks (document_id, collection_id, position, section, heading, text,
                                               start_char, end_char, embedding)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::vector)""",
                    [
                        (
                            doc_id,
                            cid,
                            c.position,
                            c.section,
                            _heading(c.index_text, c.text),
                            c.text,
                            c.start,
                            c.end,
                            _vector_literal(c.embedding),
                        )
                        for c in chunks
                    ],
                )
        info = self.get_document(collection, document.name)
        assert info is not None
        return info

    def delete_document(self, collection: str, name: str) -> None:
        cid, _ = self._collection_row(collection)
        with self._transaction() as db:
            row = db.execute(
                "DELETE FROM rag_documents WHERE collection_id = %s AND name = %s RETURNING id", (cid, name)
            ).fetchone()
            if row is None:
                raise NotFound(f"document {name!r} is not in collection {collection!r}", param="document")

    # --- search ---------------------------------------------------------------------------------

    def dense_search(self, collection: str, vector: Sequence[float], k: int) -> list[Hit]:
        cid, dims = self._collection_row(collection)
        if len(vector) != dims:
            raise Conflict(f"collection {collection!r} expects {dims}-dimensional vectors, got {len(vector)}")
        rows = self._rows(
            # collection_id inlined (an int from the database) so the planner matches the partial index
            f"""SELECT id, document_id, 1 - (embedding::vector({dims}) <=> %s::vector({dims})) AS score
                FROM rag_chunks WHERE collection_id = {cid}
                ORDER BY embedding::vector({dims}) <=> %s::vector({dims}) LIMIT %s""",
            (_vector_literal(vector), _vector_literal(vector), int(k)),
        )
        return [Hit(int(r[0]), int(r[1]), float(r[2])) for r in rows]

    def keyword_search(self, collection: str, terms: Sequence[str], k: int) -> list[Hit]:
        cid, _ = self._collection_row(collection)
        if not terms:
            return []
        query = " || ".join(["plainto_tsquery('english', %s)"] * len(terms))
        rows = self._rows(
            f"""WITH q AS (SELECT {query} AS tsq)
                SELECT c.id, c.document_id, ts_rank_cd(c.tsv, q.tsq) AS score
                FROM rag_chunks c, q
                WHERE c.collection_id = %s AND c.tsv @@ q.tsq
                ORDER BY score DESC, c.id LIMIT %s""",
            (*terms, cid, int(k)),
        )
        return [Hit(int(r[0]), int(r[1]), float(r[2])) for r in rows]

    def get_chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return {}
        rows = self._rows(_CHUNK_SELECT + " WHERE c.id = ANY(%s)", (wanted,))
        return {
            int(r[0]): StoredChunk(
                int(r[0]),
                int(r[1]),
                r[2],
                r[3],
                r[4],
                r[5],
                int(r[6]),
                r[7],
                int(r[8]),
                int(r[9]),
                float(r[10]),
                float(r[11]),
            )
            for r in rows
        }

    # --- values ---------------------------------------------------------------------------------

    def update_values(self, changes: ValueChanges) -> None:
        with self._transaction() as db, db.cursor() as cur:
            if changes.chunks:
                cur.executemany(
                    "UPDATE rag_chunks SET value = %s, feedback = feedback + 1 WHERE id = %s",
                    [(v, k) for k, v in changes.chunks.items()],
                )
            if changes.documents:
                cur.executemany(
                    "UPDATE rag_documents SET value = %s, feedback = feedback + 1 WHERE id = %s",
                    [(v, k) for k, v in changes.documents.items()],
                )

    def list_values(self, collection: str, limit: int) -> list[ValueRow]:
        cid, _ = self._collection_row(collection)
        docs = self._rows(
            """SELECT id, name, value, feedback FROM rag_documents
               WHERE collection_id = %s AND feedback > 0 ORDER BY value DESC, name LIMIT %s""",
            (cid, limit),
        )
        chunks = self._rows(
            """SELECT c.id, d.name, c.section, c.value, c.feedback FROM rag_chunks c
               JOIN rag_documents d ON d.id = c.document_id
               WHERE c.collection_id = %s AND c.feedback > 0 ORDER BY c.value DESC, c.id LIMIT %s""",
            (cid, limit),
        )
        return [ValueRow("document", int(r[0]), r[1], "", float(r[2]), int(r[3])) for r in docs] + [
            ValueRow("chunk", int(r[0]), r[1], r[2], float(r[3]), int(r[4])) for r in chunks
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
