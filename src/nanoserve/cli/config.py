"""``nanoserve config``: show the effective config or the config file's JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def config() -> None:
    """Inspect configuration."""


@config.command()
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None
)
def show(config_path: Path | None) -> None:
    """Print the effective config (defaults plus the file) as YAML."""
    import yaml

    from nanoserve.config import load_settings
    from nanoserve.errors import ConfigError

    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(yaml.safe_dump(json.loads(settings.model_dump_json()), sort_keys=False))


@config.command()
def schema() -> None:
    """Print the JSON schema of the config file."""
    from nanoserve.config import settings_json_schema

    click.echo(json.dumps(settings_json_schema(), indent=2))
