"""The key store: secrets hashed at rest, schema version and migrations, changes seen at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nanoserve.auth.store import MIGRATIONS, SECRET_PREFIX, KeyStore, Limits
from nanoserve.errors import BadRequest, Conflict, NotFound


def test_create_lookup_revoke(tmp_path: Path) -> None:
    store = KeyStore.in_dir(tmp_path)
    secret, key = store.create("app", ["inference"], models=["smollm2"], limits=Limits(rpm=5))
    assert secret.startswith(SECRET_PREFIX) and len(secret) > 40
    assert key.prefix == secret[: len(key.prefix)] and len(key.prefix) < len(secret) // 2
    found = store.lookup(secret)
    assert found is not None and found.name == "app" and found.models == ("smollm2",)
    assert found.limits == Limits(rpm=5) and found.scopes == {"inference"}
    assert store.lookup(secret + "x") is None
    assert [k.name for k in store.list()] == ["app"]
    store.revoke("app")
    assert store.lookup(secret) is None
    assert store.list() == [] and store.list(revoked=True)[0].revoked_at is not None
    # the name is free again once revoked
    assert store.create("app", ["admin"])[1].scopes == {"admin"}


def test_secrets_are_not_stored(tmp_path: Path) -> None:
    store = KeyStore.in_dir(tmp_path)
    secret, _ = store.create("app", ["inference"])
    store.close()
    raw = (tmp_path / "keys.db").read_bytes()
    assert secret.encode() not in raw and secret[len(SECRET_PREFIX) :].encode() not in raw


def test_bad_input(tmp_path: Path) -> None:
    store = KeyStore.in_dir(tmp_path)
    store.create("app", ["inference"])
    with pytest.raises(Conflict):
        store.create("app", ["inference"])
    with pytest.raises(BadRequest, match="unknown scope 'root'"):
        store.create("x", ["root"])
    with pytest.raises(BadRequest, match="at least one scope"):
        store.create("x", [])
    with pytest.raises(BadRequest, match="invalid key name"):
        store.create("has space", ["admin"])
    with pytest.raises(BadRequest, match="rpm"):
        store.create("x", ["admin"], limits=Limits(rpm=0))
    with pytest.raises(NotFound):
        store.revoke("nobody")


def test_schema_version_and_migrations(tmp_path: Path) -> None:
    store = KeyStore.in_dir(tmp_path)
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    KeyStore.in_dir(tmp_path).close()  # opening again migrates nothing
    db = sqlite3.connect(tmp_path / "keys.db")
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="schema 99"):
        KeyStore.in_dir(tmp_path)


def test_another_connections_changes_are_seen_at_once(tmp_path: Path) -> None:
    gateway, cli = KeyStore.in_dir(tmp_path), KeyStore.in_dir(tmp_path)
    assert gateway.lookup("ns-nothing") is None  # loaded once
    secret, _ = cli.create("late", ["inference"])
    assert gateway.lookup(secret) is not None
    cli.revoke("late")
    assert gateway.lookup(secret) is None
