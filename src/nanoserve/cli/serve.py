"""``nanoserve serve``: the gateway."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nanoserve.cli.config import profile_option

if TYPE_CHECKING:
    from nanoserve.config import Settings


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000; 11434 to stand in for Ollama).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file (models, memory budget, ...).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where nanoserve keeps its state (default $NANOSERVE_HOME or ~/.local/share/nanoserve).",
)
@profile_option
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None, help="Log line format.")
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Serve beyond loopback without API keys (anyone who can connect may use and manage it).",
)
def serve(
    host: str | None,
    port: int | None,
    config_path: Path | None,
    data_dir: Path | None,
    profile: str | None,
    log_format: str | None,
    log_level: str,
    insecure_no_auth: bool,
) -> None:
    """Serve the configured models behind OpenAI- and Ollama-compatible APIs on one port.

    Every setting can also come from a NANOSERVE_* environment variable (`nanoserve config show`
    says which value came from where)."""
    import uvicorn

    from nanoserve.api.app import create_app
    from nanoserve.auth.policy import exposure_problem
    from nanoserve.config import load_settings
    from nanoserve.errors import ConfigError
    from nanoserve.observability.logging import setup_logging

    try:
        source = partial(
            load_settings,
            config_path,
            host=host,
            port=port,
            data_dir=data_dir,
            profile=profile,
            log_format=log_format,
        )
        settings = source()
        problem = cloud_problem(settings) or exposure_problem(
            settings.host, auth_required=settings.auth.required, insecure_no_auth=insecure_no_auth
        )
        if problem is not None:
            raise ConfigError(problem)
        setup_logging(settings.log_format, log_level)
        app = create_app(settings, config_source=source)  # checks each backend's options
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    scheme = "https" if settings.tls.enabled else "http"
    click.echo(
        f"nanoserve: serving {', '.join(m.id for m in settings.models)} on "
        f"{scheme}://{settings.host}:{settings.port}",
        err=True,
    )
    if insecure_no_auth and not settings.auth.required:
        click.secho(
            f"WARNING: --insecure-no-auth: {settings.host} is served WITHOUT API keys; anyone who can "
            "connect can run, load and unload models and read and change documents.",
            fg="red",
            bold=True,
            err=True,
        )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_grace),
        ssl_certfile=str(settings.tls.certfile) if settings.tls.certfile else None,
        ssl_keyfile=str(settings.tls.keyfile) if settings.tls.keyfile else None,
    )


def cloud_problem(settings: Settings) -> str | None:
    """The cloud profile serves beyond loopback only with API keys (``presets.profile_problem``)."""
    import os

    from nanoserve.auth.store import KeyStore
    from nanoserve.presets import profile_problem

    def has_keys() -> bool:
        env = settings.auth.bootstrap_key_env
        if env and os.environ.get(env, "").strip():
            return True
        store = KeyStore.in_dir(settings.data_dir)
        try:
            return bool(store.list())
        finally:
            store.close()

    return profile_problem(
        settings.profile, settings.host, auth_required=settings.auth.required, has_keys=has_keys
    )
