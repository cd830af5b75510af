"""``nanoserve mcp``: an MCP server over stdio for a running gateway."""

from __future__ import annotations

import click

DEFAULT_URL = "http://127.0.0.1:8000"


@click.command()
@click.option(
    "--url", default=DEFAULT_URL, show_default=True, envvar="NANOSERVE_URL", help="The gateway's base URL."
)
@click.option("--log-level", default="warning", show_default=True, help="Level of the log written to stderr.")
@click.option(
    "--api-key",
    default=None,
    envvar="NANOSERVE_API_KEY",
    show_envvar=True,
    help="API key for a gateway that requires one (its scopes limit the tools).",
)
def mcp(url: str, log_level: str, api_key: str | None) -> None:
    """Serve MCP over stdio (for Claude Desktop, Cursor, VS Code, ...), forwarding to a gateway.

    Tools: query, ingest (text, files and folders), feedback, document_values, list_collections,
    observability, models_status, load_model, unload_model, and seed 000's nano_llm_query,
    nano_llm_observability and nano_llm_node_values. Start the gateway with `nanoserve serve`;
    this process only forwards to it. The gateway also serves MCP itself at URL/mcp.
    """
    import anyio

    from nanoserve.mcp.stdio import serve_stdio
    from nanoserve.observability.logging import setup_logging

    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--url")
    setup_logging("text", log_level)  # stderr: stdout carries the protocol
    anyio.run(serve_stdio, url, api_key)
