"""The embedded default store: one SQLite file, sqlite-vec for vectors, FTS5 for keywords.

The standard library's sqlite3 of many Python builds cannot load extensions, so this uses
``sqlean`` (the same API, with extension loading) and loads sqlite-vec into it. Each collection has
its own ``vec0`` table (vectors have one fixed dimension per table) and its own FTS5 table, so
BM25's term statistics are those of the collection alone: another collection's documents do not
change how this one ranks. One connection, guarded by a lock, serves all threads; every write is
one ``BEGIN IMMEDIATE`` transaction.

The FTS5 table has the document title, the chunk's section path and its text as three columns,
weighted by BM25 (``KEYWORD_WEIGHTS``): a word of the title or a heading says more about what a
chunk is about than the same word in running text. A store of the earlier layout (one FTS5 table
for all collections, one ``body`` column holding "title > section" and the text) is migrated when
opened: each collection's index is rebuilt from the chunks and documents tables, all in one
transaction (no re-embedding).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from nanoserve.errors import Conflict, NotFound
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
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    dimensions INTEGER NOT NULL,
    embedding_model TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    format TEXT NOT NULL,
    chars INTEGER NOT NULL,
    value REAL NOT NULL DEFAULT 0,
    feedback INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    UNIQUE (collection_id, name)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: traces refer to chunk ids
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    collection_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    section TEXT NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    value REAL NOT NULL DEFAULT 0,
    feedback INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
"""


def _create_fts(db: Any, cid: int) -> None:
    """Collection ``cid``'s keyword index, filled from its chunks (empty for a new collection)."""
    db.execute(
        f"CREATE VIRTUAL TABLE fts_{int(cid)} USING fts5(title, section, body, tokenize = 'porter unicode61')"
    )
    db.execute(
        f"""INSERT INTO fts_{int(cid)} (rowid, title, section, body)
            SELECT c.id, d.title, c.section, c.text
            FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.collection_id = ?""",
        (cid,),
    )


# BM25 weights of the title, section and body columns. Weighting headings up (2, 2, 1) helped the
# tuning corpora a little but lowered the held-out one (benchmarks/rag/results/retrieval-ablation.json),
# so the columns count alike: what the columns bring is BM25 length normalisation per field.
KEYWORD_WEIGHTS = (1.0, 1.0, 1.0)

_CHUNK_SELECT = """
SELECT c.id, c.document_id, d.name, d.source, d.title, c.section, c.position, c.text, c.start,
       c."end", c.value, d.value
FROM chunks c JOIN documents d ON d.id = c.document_id
"""


def _blob(vector: Sequence[float]) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def _fts_query(terms: Sequence[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


class SqliteStore(VectorStore):
    backend = "sqlite"

    def __init__(self, path: str | Path):
        import sqlean as sqlite3
        import sqlite_vec

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.enable_load_extension(True)
        sqlite_vec.load(self._db)
        self._db.enable_load_extension(False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.executescript(_SCHEMA)
        self._migrate_fts()
        self._error = sqlite3.Error
        self.keyword_weights = KEYWORD_WEIGHTS

    def _migrate_fts(self) -> None:
        """Replace the earlier shared single-column keyword index by one per collection."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks_fts'").fetchone() is None:
                return
            db.execute("DROP TABLE chunks_fts")
            for (cid,) in db.execute("SELECT id FROM collections").fetchall():
                db.execute(f"DROP TABLE IF EXISTS fts_{int(cid)}")
                _create_fts(db, int(cid))

    def size_bytes(self) -> int | None:
        """The database file and its write-ahead log."""
        total = 0
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                total += path.stat().st_size
            except OSError:
                pass
        return total

    # --- plumbing -------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _collection_row(self, name: str) -> tuple[int, int]:
        rows = self._rows("SELECT id, dimensions FROM collections WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"collection {name!r} does not exist", param="collection")
        return rows[0][0], rows[0][1]

    # --- collections ----------------------------------------------------------------------------

    def ensure_collection(self, name: str, dimensions: int, embedding_model: str) -> CollectionInfo:
        check_collection_name(name)
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, dimensions, embedding_model FROM collections WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                cid = db.execute(
                    "INSERT INTO collections (name, dimensions, embedding_model, created_at) VALUES (?, ?, ?, ?)",
                    (name, dimensions, embedding_model, time.time()),
                ).lastrowid
                db.execute(
                    f"CREATE VIRTUAL TABLE vec_{int(cid)} USING vec0("
                    f"embedding float[{int(dimensions)}] distance_metric=cosine)"
                )
                _create_fts(db, int(cid))
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
                      (SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id),
                      (SELECT COUNT(*) FROM chunks k WHERE k.collection_id = c.id)
               FROM collections c WHERE c.name = ?""",
            (name,),
        )
        if not rows:
            raise NotFound(f"collection {name!r} does not exist", param="collection")
        n, dims, model, created, docs, chunks = rows[0]
        return CollectionInfo(n, dims, model, docs, chunks, created)

    def list_collections(self) -> list[CollectionInfo]:
        return [
            self.get_collection(name) for (name,) in self._rows("SELECT name FROM collections ORDER BY name")
        ]

    def delete_collection(self, name: str) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT id FROM collections WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"collection {name!r} does not exist", param="collection")
            cid = int(row[0])
            db.execute(f"DROP TABLE IF EXISTS fts_{cid}")
            db.execute(f"DROP TABLE IF EXISTS vec_{cid}")
            db.execute("DELETE FROM chunks WHERE collection_id = ?", (cid,))
            db.execute("DELETE FROM documents WHERE collection_id = ?", (cid,))
            db.execute("DELETE FROM collections WHERE id = ?", (cid,))

    # --- documents ------------------------------------------------------------------------------

    _DOC_SELECT = """SELECT d.id, d.name, d.source, d.title, d.content_hash, d.format, d.chars,
                            (SELECT COUNT(*) FROM chunks k WHERE k.document_id = d.id), d.value, d.updated_at
                     FROM documents d"""

    def get_document(self, collection: str, name: str) -> DocumentInfo | None:
        cid, _ = self._collection_row(collection)
        rows = self._rows(self._DOC_SELECT + " WHERE d.collection_id = ? AND d.name = ?", (cid, name))
        return DocumentInfo(rows[0][0], collection, *rows[0][1:]) if rows else None

    def list_documents(self, collection: str) -> list[DocumentInfo]:
        cid, _ = self._collection_row(collection)
        rows = self._rows(self._DOC_SELECT + " WHERE d.collection_id = ? ORDER BY d.name", (cid,))
        return [DocumentInfo(r[0], collection, *r[1:]) for r in rows]

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
            row = db.execute(
                "SELECT id FROM documents WHERE collection_id = ? AND name = ?", (cid, document.name)
            ).fetchone()
            if row is None:
                doc_id = db.execute(
                    """INSERT INTO documents (collection_id, name, source, title, content_hash, format, chars, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
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
                ).lastrowid
            else:
                doc_id = row[0]
                self._delete_chunks(db, cid, doc_id)
                db.execute(
                    """UPDATE documents SET source = ?, title = ?, content_hash = ?, format = ?, chars = ?,
                       updated_at = ? WHERE id = ?""",
                    (
                        document.source,
                        document.title,
                        document.content_hash,
                        document.format,
                        document.chars,
                        now,
                        doc_id,
                    ),
                )
            for chunk in chunks:
                chunk_id = db.execute(
                    """INSERT INTO chunks (document_id, collection_id, position, section, text, start, "end")
                       VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    (doc_id, cid, chunk.position, chunk.section, chunk.text, chunk.start, chunk.end),
                ).lastrowid
                db.execute(
                    f"INSERT INTO fts_{cid} (rowid, title, section, body) VALUES (?, ?, ?, ?)",
                    (chunk_id, document.title, chunk.section, chunk.text),
                )
                db.execute(
                    f"INSERT INTO vec_{cid} (rowid, embedding) VALUES (?, ?)",
                    (chunk_id, _blob(chunk.embedding)),
                )
        info = self.get_document(collection, document.name)
        assert info is not None
        return info

    @staticmethod
    def _delete_chunks(db: Any, cid: int, doc_id: int) -> None:
        ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (doc_id,))]
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            db.execute(f"DELETE FROM fts_{cid} WHERE rowid IN ({marks})", batch)
            db.execute(f"DELETE FROM vec_{cid} WHERE rowid IN ({marks})", batch)
        db.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))

    def delete_document(self, collection: str, name: str) -> None:
        cid, _ = self._collection_row(collection)
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM documents WHERE collection_id = ? AND name = ?", (cid, name)
            ).fetchone()
            if row is None:
                raise NotFound(f"document {name!r} is not in collection {collection!r}", param="document")
            self._delete_chunks(db, cid, row[0])
            db.execute("DELETE FROM documents WHERE id = ?", (row[0],))

    # --- search ---------------------------------------------------------------------------------

    def dense_search(self, collection: str, vector: Sequence[float], k: int) -> list[Hit]:
        cid, dims = self._collection_row(collection)
        if len(vector) != dims:
            raise Conflict(f"collection {collection!r} expects {dims}-dimensional vectors, got {len(vector)}")
        rows = self._rows(
            f"""SELECT v.rowid, v.distance, c.document_id
                FROM (SELECT rowid, distance FROM vec_{cid} WHERE embedding MATCH ? AND k = ?) v
                JOIN chunks c ON c.id = v.rowid ORDER BY v.distance""",
            (_blob(vector), int(k)),
        )
        return [Hit(int(r[0]), int(r[2]), 1.0 - float(r[1])) for r in rows]

    def keyword_search(self, collection: str, terms: Sequence[str], k: int) -> list[Hit]:
        cid, _ = self._collection_row(collection)
        if not terms:
            return []
        title, section, body = (float(w) for w in self.keyword_weights)
        rows = self._rows(
            f"""SELECT f.rowid, -bm25(fts_{cid}, {title}, {section}, {body}) AS score, c.document_id
               FROM fts_{cid} f JOIN chunks c ON c.id = f.rowid
               WHERE fts_{cid} MATCH ? ORDER BY score DESC LIMIT ?""",
            (_fts_query(terms), int(k)),
        )
        return [Hit(int(r[0]), int(r[2]), float(r[1])) for r in rows]

    def get_chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        out: dict[int, StoredChunk] = {}
        ids = list(dict.fromkeys(int(i) for i in ids))
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            for r in self._rows(_CHUNK_SELECT + f" WHERE c.id IN ({marks})", batch):
                out[r[0]] = StoredChunk(*r)
        return out

    # --- values ---------------------------------------------------------------------------------

    def update_values(self, changes: ValueChanges) -> None:
        with self._transaction() as db:
            for cid, value in changes.chunks.items():
                db.execute("UPDATE chunks SET value = ?, feedback = feedback + 1 WHERE id = ?", (value, cid))
            for did, value in changes.documents.items():
                db.execute(
                    "UPDATE documents SET value = ?, feedback = feedback + 1 WHERE id = ?", (value, did)
                )

    def list_values(self, collection: str, limit: int) -> list[ValueRow]:
        cid, _ = self._collection_row(collection)
        docs = self._rows(
            """SELECT id, name, value, feedback FROM documents
               WHERE collection_id = ? AND feedback > 0 ORDER BY value DESC, name LIMIT ?""",
            (cid, limit),
        )
        chunks = self._rows(
            """SELECT c.id, d.name, c.section, c.value, c.feedback FROM chunks c
               JOIN documents d ON d.id = c.document_id
               WHERE c.collection_id = ? AND c.feedback > 0 ORDER BY c.value DESC, c.id LIMIT ?""",
            (cid, limit),
        )
        return [ValueRow("document", r[0], r[1], "", r[2], r[3]) for r in docs] + [
            ValueRow("chunk", r[0], r[1], r[2], r[3], r[4]) for r in chunks
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
