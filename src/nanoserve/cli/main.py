"""The ``nanoserve`` command: a thin shell with lazily imported subcommands.

Each subcommand lives in its own module and is imported only when it runs (or its ``--help`` is
asked for), so ``nanoserve --help`` never imports torch or llama.cpp. User errors exit 1 with
``Error: ...``; usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import click

from nanoserve import __version__

# name -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "serve": "nanoserve.cli.serve:serve",
    "worker": "nanoserve.cli.worker:worker",
    "config": "nanoserve.cli.config:config",
    "models": "nanoserve.cli.models:models",
    "cluster": "nanoserve.cli.cluster:cluster",
    "bench": "nanoserve.cli.bench:bench",
    "ingest": "nanoserve.cli.rag:ingest",
    "rag": "nanoserve.cli.rag:rag",
    "mcp": "nanoserve.cli.mcp:mcp",
    "demo": "nanoserve.cli.demo:demo",
    "keys": "nanoserve.cli.keys:keys",
    "pull": "nanoserve.cli.pull:pull",
}

_SHORT_HELP = {
    "serve": "Run the gateway: OpenAI and Ollama APIs on one port.",
    "worker": "Host one model in this process (started by the gateway).",
    "config": "Show the effective config or its JSON schema.",
    "models": "Model status, load and unload on a running gateway.",
    "cluster": "The nodes of a gateway's Ray cluster and their replicas.",
    "bench": "Benchmark an OpenAI-compatible server (vLLM's figures).",
    "ingest": "Add documents to a collection.",
    "rag": "Query collections and evaluate retrieval.",
    "mcp": "MCP server over stdio, forwarding to a gateway.",
    "demo": "Demonstrations on a gateway of their own (the provisioning cycle).",
    "keys": "API keys: create, list, revoke.",
    "pull": "Download a hub model's weights (hf: sources) through the gateway.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._available(name))

    @staticmethod
    def _available(name: str) -> bool:
        import importlib.util

        module = COMMANDS[name].partition(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or not self._available(name):
            return None
        import importlib

        module_name, _, attr = target.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nanoserve")
def cli() -> None:
    """nanoserve: small language and embedding models behind OpenAI- and Ollama-compatible APIs."""


def main() -> None:
    cli()
