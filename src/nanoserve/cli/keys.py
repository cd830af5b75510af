"""``nanoserve keys``: create, list and revoke API keys in the data dir's key store.

It edits the store file directly (no gateway needed, e.g. before the first start); a running
gateway sees the change at its next request. A secret is printed once and kept only as a hash.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

SCOPE_CHOICES = ["inference", "documents", "admin"]

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file (for its data_dir).",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The gateway's data dir (default $NANOSERVE_HOME or ~/.local/share/nanoserve).",
)


def _store(config_path: Path | None, data_dir: Path | None):  # type: ignore[no-untyped-def]
    from nanoserve.auth.store import KeyStore
    from nanoserve.config import load_settings
    from nanoserve.errors import ConfigError

    try:
        settings = load_settings(config_path, data_dir=data_dir)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    return KeyStore.in_dir(settings.data_dir)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(getattr(exc, "message", str(exc)))


@click.group()
def keys() -> None:
    """API keys: create (the secret is shown once), list and revoke."""


@keys.command()
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPE_CHOICES),
    default=("inference",),
    show_default=True,
    help="What the key may do (repeat for several).",
)
@click.option("--model", "models", multiple=True, help="A model the key may use (repeat); default: all.")
@click.option("--rpm", type=click.IntRange(min=1), default=None, help="Requests per minute.")
@click.option(
    "--tpm", type=click.IntRange(min=1), default=None, help="Tokens (prompt + completion) per minute."
)
@click.option("--max-concurrent", type=click.IntRange(min=1), default=None, help="Requests at once.")
@config_option
@data_dir_option
def create(
    name: str,
    scopes: tuple[str, ...],
    models: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
    max_concurrent: int | None,
    config_path: Path | None,
    data_dir: Path | None,
) -> None:
    """Create a key NAME and print its secret (shown only this once)."""
    from nanoserve.auth.store import Limits
    from nanoserve.errors import NanoserveError

    store = _store(config_path, data_dir)
    try:
        secret, key = store.create(name, scopes, models=models, limits=Limits(rpm, tpm, max_concurrent))
    except NanoserveError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    click.echo(
        f"created key {key.name!r} ({', '.join(sorted(key.scopes))}); its secret, shown once:", err=True
    )
    click.echo(secret)


@keys.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@config_option
@data_dir_option
def list_keys(show_all: bool, as_json: bool, config_path: Path | None, data_dir: Path | None) -> None:
    """The keys (never their secrets)."""
    store = _store(config_path, data_dir)
    try:
        found = store.list(revoked=show_all)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([k.as_dict() for k in found], indent=2))
        return
    rows = [["NAME", "PREFIX", "SCOPES", "MODELS", "RPM", "TPM", "CONCURRENT", "CREATED", "REVOKED"]]
    for k in found:
        rows.append(
            [
                k.name,
                k.prefix + "...",
                ",".join(sorted(k.scopes)),
                ",".join(k.models) or "all",
                _n(k.limits.rpm),
                _n(k.limits.tpm),
                _n(k.limits.max_concurrent),
                _when(k.created_at),
                _when(k.revoked_at) if k.revoked_at else "-",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@keys.command()
@click.argument("name")
@config_option
@data_dir_option
def revoke(name: str, config_path: Path | None, data_dir: Path | None) -> None:
    """Revoke the key NAME (a running gateway refuses it from its next request)."""
    from nanoserve.errors import NanoserveError

    store = _store(config_path, data_dir)
    try:
        store.revoke(name)
    except NanoserveError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    click.echo(f"revoked key {name!r}")


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
