"""Options shared by the commands that talk to a running gateway.

``api_key_option`` adds ``--api-key`` (or ``$NANOSERVE_API_KEY``) without changing a command's
signature: the key is kept in the click context, and ``auth_headers()`` turns it into the
bearer header for the command's HTTP client.
"""

from __future__ import annotations

from typing import Any

import click

API_KEY_ENV = "NANOSERVE_API_KEY"
_META = "nanoserve.api_key"


def _keep(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    ctx.meta[_META] = value


def api_key_option(f: Any) -> Any:
    return click.option(
        "--api-key",
        default=None,
        envvar=API_KEY_ENV,
        show_envvar=True,
        expose_value=False,
        callback=_keep,
        help="API key for a gateway that requires one (sent as a bearer token).",
    )(f)


def current_api_key() -> str | None:
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(_META)


def auth_headers(api_key: str | None = None) -> dict[str, str]:
    """The bearer header for ``api_key`` (default: the current command's ``--api-key``)."""
    key = api_key if api_key is not None else current_api_key()
    return {"authorization": f"Bearer {key}"} if key else {}
