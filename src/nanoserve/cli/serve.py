"""``nanoserve serve``: the gateway."""

from __future__ import annotations

from pathlib import Path

import click


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
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None, help="Log line format.")
@click.option("--log-level", default="info", show_default=True)
def serve(
    host: str | None,
    port: int | None,
    config_path: Path | None,
    data_dir: Path | None,
    log_format: str | None,
    log_level: str,
) -> None:
    """Serve the configured models behind OpenAI- and Ollama-compatible APIs on one port."""
    import uvicorn

    from nanoserve.api.app import create_app
    from nanoserve.config import load_settings
    from nanoserve.errors import ConfigError
    from nanoserve.observability.logging import setup_logging

    try:
        settings = load_settings(config_path, host=host, port=port, data_dir=data_dir, log_format=log_format)
        setup_logging(settings.log_format, log_level)
        app = create_app(settings)  # checks each backend's options
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(
        f"nanoserve: serving {', '.join(m.id for m in settings.models)} on http://{settings.host}:{settings.port}",
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
    )
