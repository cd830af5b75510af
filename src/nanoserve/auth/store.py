"""The key store: SQLite in the data dir, one row per key, secrets kept only as SHA-256 hashes.

A secret is ``ns-`` and 43 URL-safe characters (256 random bits), printed once by ``nanoserve
keys create``; lists show its first characters (``prefix``). A high-entropy secret needs no slow
hash: SHA-256 of it cannot be reversed, and checking a key stays a dictionary lookup.

The schema has a version table and numbered migrations (``MIGRATIONS``); opening a store brings
it up to date. A running gateway and the CLI share the file: ``lookup`` notices another
connection's commit through ``PRAGMA data_version`` (one cheap query) and reloads, so a key
created or revoked by ``nanoserve keys`` counts at the very next request.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nanoserve.errors import BadRequest, Conflict, NotFound

FILE_NAME = "keys.db"
SECRET_PREFIX = "ns-"
SHOWN_CHARS = 10  # of a secret, in lists: "ns-" and 7 more
SCOPES = ("inference", "documents", "admin")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")

MIGRATIONS: tuple[str, ...] = (
    # 1: keys; a name is unique among keys that are not revoked
    """
    CREATE TABLE keys (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        models TEXT NOT NULL,
        rpm INTEGER,
        tpm INTEGER,
        max_concurrent INTEGER,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE UNIQUE INDEX keys_live_name ON keys (name) WHERE revoked_at IS NULL;
    """,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-key limits; None is unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    prefix: str
    scopes: frozenset[str]
    models: tuple[str, ...] = ()  # empty: every model
    limits: Limits = field(default_factory=Limits)
    created_at: float = 0.0
    revoked_at: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "prefix": self.prefix,
            "scopes": sorted(self.scopes),
            "models": list(self.models),
            "rpm": self.limits.rpm,
            "tpm": self.limits.tpm,
            "max_concurrent": self.limits.max_concurrent,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def validate(name: str, scopes: Iterable[str], limits: Limits) -> frozenset[str]:
    """The scopes as a set, or a 400 naming what is wrong (pure)."""
    if not _NAME.fullmatch(name):
        raise BadRequest(
            f"invalid key name {name!r}: 1-64 letters, digits, '_', '.', '@' or '-'", param="name"
        )
    chosen = frozenset(scopes)
    if not chosen:
        raise BadRequest(f"a key needs at least one scope ({', '.join(SCOPES)})", param="scope")
    if unknown := sorted(chosen - set(SCOPES)):
        raise BadRequest(f"unknown scope {unknown[0]!r} (expected: {', '.join(SCOPES)})", param="scope")
    for label, value in (("rpm", limits.rpm), ("tpm", limits.tpm), ("max_concurrent", limits.max_concurrent)):
        if value is not None and value < 1:
            raise BadRequest(f"{label} must be at least 1", param=label)
    return chosen


class KeyStore:
    """The keys of one data dir. Safe to share between the event loop and worker threads."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self._lock = threading.Lock()
        self._by_hash: dict[str, ApiKey] = {}
        self._version = -1
        self._migrate()

    @classmethod
    def in_dir(cls, data_dir: Path) -> KeyStore:
        return cls(data_dir / FILE_NAME)

    def close(self) -> None:
        self._db.close()

    @property
    def schema_version(self) -> int:
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                current = self.schema_version
                if current > len(MIGRATIONS):
                    raise RuntimeError(
                        f"{self.path} has key store schema {current}; this nanoserve knows up to "
                        f"{len(MIGRATIONS)} (upgrade nanoserve)"
                    )
                for script in MIGRATIONS[current:]:
                    for statement in filter(str.strip, script.split(";")):
                        self._db.execute(statement)
                self._db.execute("DELETE FROM schema_version")
                self._db.execute("INSERT INTO schema_version VALUES (?)", (len(MIGRATIONS),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._version = -1

    # -- changes (the CLI, the admin API) -------------------------------------------------
    def create(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        models: Iterable[str] = (),
        limits: Limits | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key and its secret (shown once: only its hash is kept)."""
        limits = limits or Limits()
        chosen = validate(name, scopes, limits)
        secret = new_secret()
        key = ApiKey(name, secret[:SHOWN_CHARS], chosen, tuple(models), limits, time.time())
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO keys (name, prefix, hash, scopes, models, rpm, tpm, max_concurrent, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        key.prefix,
                        hash_secret(secret),
                        json.dumps(sorted(chosen)),
                        json.dumps(list(key.models)),
                        limits.rpm,
                        limits.tpm,
                        limits.max_concurrent,
                        key.created_at,
                    ),
                )
                self._version = -1
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"a key named {name!r} exists (revoke it first)", param="name") from exc
        return secret, key

    def revoke(self, name: str) -> ApiKey:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (time.time(), name)
            )
            self._version = -1
        if cursor.rowcount == 0:
            raise NotFound(f"no live key named {name!r}", param="name")
        return next(k for k in self.list(revoked=True) if k.name == name and k.revoked_at is not None)

    def list(self, *, revoked: bool = False) -> list[ApiKey]:
        where = "" if revoked else " WHERE revoked_at IS NULL"
        with self._lock:
            rows = self._db.execute(
                "SELECT name, prefix, scopes, models, rpm, tpm, max_concurrent, created_at, revoked_at "
                f"FROM keys{where} ORDER BY created_at DESC, id DESC"
            ).fetchall()
        return [_key(row) for row in rows]

    # -- the hot path ---------------------------------------------------------------------
    def lookup(self, secret: str) -> ApiKey | None:
        """The live key with this secret, or None; sees other processes' commits at once."""
        self._refresh()
        return self._by_hash.get(hash_secret(secret))

    def by_name(self, name: str) -> ApiKey | None:
        self._refresh()
        return next((k for k in self._by_hash.values() if k.name == name), None)

    def _refresh(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version == self._version:
                return
            rows = self._db.execute(
                "SELECT name, prefix, scopes, models, rpm, tpm, max_concurrent, created_at, revoked_at, "
                "hash FROM keys WHERE revoked_at IS NULL"
            ).fetchall()
            self._by_hash = {row[9]: _key(row[:9]) for row in rows}
            self._version = version


def _key(row: tuple[object, ...]) -> ApiKey:
    name, prefix, scopes, models, rpm, tpm, max_concurrent, created_at, revoked_at = row
    return ApiKey(
        name=str(name),
        prefix=str(prefix),
        scopes=frozenset(json.loads(str(scopes))),
        models=tuple(json.loads(str(models))),
        limits=Limits(rpm, tpm, max_concurrent),  # type: ignore[arg-type]
        created_at=float(created_at),  # type: ignore[arg-type]
        revoked_at=None if revoked_at is None else float(revoked_at),  # type: ignore[arg-type]
    )
