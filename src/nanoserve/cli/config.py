"""``nanoserve config``: show the effective config (and where each value came from) or the
config file's JSON schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

COMMENT_COLUMN = 44

profile_option = click.option(
    "--profile",
    type=click.Choice(["local", "cloud"]),
    default=None,
    help="Presets beneath explicit values: local (one user, lowest latency) or cloud (many sessions).",
)


@click.group()
def config() -> None:
    """Inspect configuration."""


@config.command()
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None
)
@profile_option
@click.option("--json", "as_json", is_flag=True, help='{"settings": ..., "origins": {path: origin}} as JSON.')
def show(config_path: Path | None, profile: str | None, as_json: bool) -> None:
    """Print the effective config as YAML, each value that is not a default commented with where it
    came from: cli --flag, env NANOSERVE_..., file PATH or profile NAME. Unknown NANOSERVE_*
    variables are reported on stderr."""
    from nanoserve.config import resolve_settings
    from nanoserve.errors import ConfigError

    try:
        resolved = resolve_settings(config_path, profile=profile)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    for warning in resolved.warnings:
        click.echo(f"Warning: {warning}", err=True)
    data = json.loads(resolved.settings.model_dump_json())
    if as_json:
        click.echo(json.dumps({"settings": data, "origins": resolved.origins}, indent=2))
        return
    click.echo("# the effective config; values without a comment are defaults")
    click.echo("\n".join(render(data, resolved.origins)))


def render(data: dict[str, Any], origins: dict[str, str]) -> list[str]:
    """``data`` as block YAML, each leaf whose origin is not ``default`` commented with it."""
    out: list[str] = []
    _mapping(data, "", "", origins, out)
    return out


def _mapping(data: dict[str, Any], path: str, indent: str, origins: dict[str, str], out: list[str]) -> None:
    first = True
    for key, value in data.items():
        # the first key of a list item follows its "- " (the caller put it in indent)
        lead = indent if first else " " * len(indent)
        first = False
        here = f"{path}{key}"
        if isinstance(value, dict) and value:
            out.append(f"{lead}{key}:")
            _mapping(value, here + ".", " " * len(indent) + "  ", origins, out)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.append(f"{lead}{key}:")
            for i, item in enumerate(value):
                _mapping(item, f"{here}.{i}.", " " * len(indent) + "- ", origins, out)
        else:
            origin = origins.get(here if not isinstance(value, list) or not value else f"{here}.0", "default")
            line = f"{lead}{key}: {_scalar(value)}"
            out.append(line if origin == "default" else f"{line.ljust(COMMENT_COLUMN)} # {origin}")


def _scalar(value: Any) -> str:
    import yaml

    text: str = yaml.safe_dump(value, default_flow_style=True, width=1 << 16)
    return text.removesuffix("\n").removesuffix("\n...")


@config.command()
def schema() -> None:
    """Print the JSON schema of the config file."""
    from nanoserve.config import settings_json_schema

    click.echo(json.dumps(settings_json_schema(), indent=2))
