"""The one store interface behind every backend (SQLite by default, PostgreSQL + pgvector).

Methods are synchronous and may block: ``RagService`` calls them through ``asyncio.to_thread``.
A store is safe to call from several threads (each backend serialises its connection use).
``replace_document`` is atomic: readers see the old chunks or the new ones, and a failure part-way
leaves the old ones in place.

Scores: ``dense_search`` returns cosine similarity in [-1, 1]; ``keyword_search`` a positive
relevance score whose scale is backend-specific (only its order is used, through rank fusion).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nanoserve.errors import BadRequest

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_collection_name(name: str) -> str:
    if not _COLLECTION_NAME.match(name):
        raise BadRequest(
            f"invalid collection name {name!r}: 1-64 characters, letters, digits, '_', '.', '-', "
            "starting with a letter or digit",
            param="collection",
        )
    return name


MAX_DOCUMENT_NAME = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_document_name(name: str) -> str:
    """A document name: 1-512 characters, no control characters, no backslash; ``/`` only between
    relative path parts (``nanoserve ingest`` names a folder's files by their relative path), never
    an absolute path or a ``.`` or ``..`` part."""
    problem = None
    if not name or len(name) > MAX_DOCUMENT_NAME:
        problem = f"1-{MAX_DOCUMENT_NAME} characters"
    elif _CONTROL.search(name):
        problem = "no control characters (NUL, newline, ...)"
    elif "\\" in name:
        problem = "no backslash"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "a relative path: no leading '/', no empty, '.' or '..' parts"
    if problem is not None:
        raise BadRequest(f"invalid document name {name[:80]!r}: {problem}", param="name")
    return name


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    dimensions: int
    embedding_model: str
    documents: int
    chunks: int
    created_at: float


@dataclass(frozen=True, slots=True)
class NewDocument:
    name: str  # unique in its collection: re-ingesting the same name replaces the document
    source: str
    title: str
    content_hash: str
    format: str
    chars: int


@dataclass(frozen=True, slots=True)
class NewChunk:
    position: int
    text: str
    section: str
    start: int
    end: int
    index_text: str  # what is embedded and keyword-indexed (title and section + text)
    embedding: Sequence[float]


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: int
    collection: str
    name: str
    source: str
    title: str
    content_hash: str
    format: str
    chars: int
    chunks: int
    value: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class StoredChunk:
    id: int
    document_id: int
    document: str  # document name
    source: str
    title: str
    section: str
    position: int
    text: str
    start: int
    end: int
    value: float
    document_value: float


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: int
    document_id: int
    score: float


@dataclass(frozen=True, slots=True)
class ValueRow:
    kind: str  # "document" or "chunk"
    id: int
    document: str
    section: str
    value: float
    feedback: int  # how many feedback events touched it


@dataclass(slots=True)
class ValueChanges:
    chunks: dict[int, float] = field(default_factory=dict)
    documents: dict[int, float] = field(default_factory=dict)


class VectorStore(ABC):
    """Collections of documents split into chunks, with vector and keyword search."""

    backend: str

    def size_bytes(self) -> int | None:
        """The store's size on disk, where it has one file set (SQLite); None if unknown."""
        return None

    # collections
    @abstractmethod
    def ensure_collection(self, name: str, dimensions: int, embedding_model: str) -> CollectionInfo:
        """The collection, created if missing; ``Conflict`` if it exists with other dimensions."""

    @abstractmethod
    def get_collection(self, name: str) -> CollectionInfo:
        """``NotFound`` if there is no such collection."""

    @abstractmethod
    def list_collections(self) -> list[CollectionInfo]: ...

    @abstractmethod
    def delete_collection(self, name: str) -> None:
        """Delete it with all its documents; ``NotFound`` if missing."""

    # documents
    @abstractmethod
    def get_document(self, collection: str, name: str) -> DocumentInfo | None: ...

    @abstractmethod
    def list_documents(self, collection: str) -> list[DocumentInfo]: ...

    @abstractmethod
    def replace_document(
        self, collection: str, document: NewDocument, chunks: Sequence[NewChunk]
    ) -> DocumentInfo:
        """Insert the document or replace its chunks, in one transaction. A replaced document
        keeps its id and value; its chunks are new (chunk values start at 0)."""

    @abstractmethod
    def delete_document(self, collection: str, name: str) -> None:
        """``NotFound`` if missing."""

    # search
    @abstractmethod
    def dense_search(self, collection: str, vector: Sequence[float], k: int) -> list[Hit]: ...

    @abstractmethod
    def keyword_search(self, collection: str, terms: Sequence[str], k: int) -> list[Hit]:
        """Chunks matching any of ``terms`` (plain words; the backend stems and escapes them)."""

    @abstractmethod
    def get_chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """Chunks by id (ids that no longer exist are absent)."""

    # values
    @abstractmethod
    def update_values(self, changes: ValueChanges) -> None:
        """Set chunk and document values (and count one feedback event for each), atomically."""

    @abstractmethod
    def list_values(self, collection: str, limit: int) -> list[ValueRow]:
        """Documents and chunks with feedback, most valuable first (then least)."""

    def values_of(self, chunk_ids: Sequence[int]) -> tuple[Mapping[int, float], Mapping[int, float]]:
        """(chunk values, document values) for the given chunks."""
        chunks = self.get_chunks(chunk_ids)
        return (
            {cid: c.value for cid, c in chunks.items()},
            {c.document_id: c.document_value for c in chunks.values()},
        )

    @abstractmethod
    def close(self) -> None: ...
