"""``nanoserve worker``: host one model (normally started by the gateway)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nanoserve.config import default_data_dir


@click.command()
@click.option(
    "--engine", "engine_name", required=True, help="Engine name (llamacpp, sentence-transformers, mock, ...)."
)
@click.option("--model", "source", default=None, help="Model file or directory (a resolved path).")
@click.option("--name", required=True, help="Model name reported in responses.")
@click.option("--kind", default="chat", type=click.Choice(["chat", "embedding", "rerank"]), show_default=True)
@click.option("--context-length", default=2048, show_default=True, help="Tokens per sequence.")
@click.option("--parallel", default=4, show_default=True, help="Sequences served at once.")
@click.option("--threads", default=1, show_default=True, help="CPU threads for the engine.")
@click.option("--chat-template", default=None, help="Jinja chat template overriding the model's own.")
@click.option(
    "--tool-format",
    default="hermes",
    show_default=True,
    type=click.Choice(["hermes", "template"]),
    help="How tools are shown to a chat model (docs/tools.md).",
)
@click.option("--options", "options_json", default="{}", help="Engine options as a JSON object.")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="Where to cache converted weights."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, help="Port to listen on (0 = any free port).")
@click.option("--fd", default=None, type=int, help="Serve on this inherited listening socket instead.")
@click.option("--parent-pid", default=None, type=int, help="Exit when this process dies.")
@click.option("--log-level", default="info", show_default=True)
def worker(
    engine_name: str,
    source: str | None,
    name: str,
    kind: str,
    context_length: int,
    parallel: int,
    threads: int,
    chat_template: str | None,
    tool_format: str,
    options_json: str,
    data_dir: Path | None,
    host: str,
    port: int,
    fd: int | None,
    parent_pid: int | None,
    log_level: str,
) -> None:
    """Host one model and serve it over OpenAI HTTP, plus /health and /info."""
    from nanoserve.engines.base import EngineSpec
    from nanoserve.worker.main import run_worker

    try:
        options = json.loads(options_json)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--options") from exc
    spec = EngineSpec(
        name=name,
        path=Path(source) if source else None,
        kind=kind,
        context_length=context_length,
        parallel=parallel,
        threads=threads,
        chat_template=chat_template,
        options=options,
        data_dir=data_dir or default_data_dir(),
    )
    run_worker(
        engine_name,
        spec,
        host=host,
        port=port,
        fd=fd,
        parent_pid=parent_pid,
        log_level=log_level,
        tool_format=tool_format,
    )
