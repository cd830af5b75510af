"""The MCP server (official SDK, ``MCPServer``): nanoserve's tools and resources.

``create_mcp_server(client, allow_paths=...)`` builds one server over one ``GatewayClient``; the
same server runs over stdio (``nanoserve mcp``, ``stdio.py``) and streamable HTTP mounted in the
gateway at ``/mcp`` (``http.py``).

Errors are translated once, here: a tool's ``NanoserveError`` (the gateway's 4xx/5xx, an
unreachable gateway, a bad argument combination) and an argument that fails the input schema
come back as MCP tool errors (``isError: true``) whose text says what was wrong; a resource
that does not exist is the protocol's "invalid params" error. Nothing ends the session.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ResourceNotFoundError,
    ToolError,
    UnexpectedToolError,
)
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import ValidationError

from nanoserve import __version__
from nanoserve.errors import NanoserveError, NotFound
from nanoserve.mcp.client import GatewayClient, forwarding
from nanoserve.mcp.tools import NanoserveTools
from nanoserve.wire.errors import bad_request_from_validation

INSTRUCTIONS = """\
nanoserve serves small language and embedding models and answers questions about your documents.
Add documents with `ingest`, ask with `query` (answers cite their sources as [n]), rate answers with
`feedback` and see what the ratings taught it with `document_values`. `observability` reports
pipeline and serving metrics; `models_status`, `load_model` and `unload_model` manage the models.
Browse collections and traces as resources (collection://{name}, trace://{trace_id})."""

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
IDEMPOTENT = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
DESTRUCTIVE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)

# name -> (title, annotations); the order is the order clients list them in
TOOLS: dict[str, tuple[str, ToolAnnotations]] = {
    "query": ("Ask your documents", WRITES),  # writes a trace
    "ingest": ("Add a document", IDEMPOTENT),
    "feedback": ("Rate an answer", WRITES),
    "document_values": ("Learned document values", READ_ONLY),
    "list_collections": ("List collections", READ_ONLY),
    "observability": ("Pipeline and serving metrics", READ_ONLY),
    "models_status": ("Model status and memory", READ_ONLY),
    "load_model": ("Load a model", IDEMPOTENT),
    "unload_model": ("Unload a model", DESTRUCTIVE),
    "nano_llm_query": ("Ask your documents (seed 000 alias)", WRITES),
    "nano_llm_observability": ("Pipeline metrics (seed 000 alias)", READ_ONLY),
    "nano_llm_node_values": ("Node values (seed 000 alias)", READ_ONLY),
}


class GatewayTool(Tool):
    """A tool whose failures read well: unknown arguments are refused, a schema violation names the
    argument, and a ``NanoserveError`` becomes a tool error carrying its message (the SDK would
    otherwise hide any exception it did not expect behind "Error executing tool X")."""

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        known = self.parameters.get("properties", {})
        unknown = sorted(set(arguments) - set(known))
        if unknown:
            expected = ", ".join(known) or "none"
            raise ToolError(
                f"Error executing tool {self.name}: unknown argument '{unknown[0]}' (expected: {expected})"
            )
        try:
            return await super().run(arguments, context, convert_result=convert_result)
        except UnexpectedToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, NanoserveError):
                raise ToolError(f"Error executing tool {self.name}: {_describe(cause)}") from cause
            raise
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                message = bad_request_from_validation(cause).message
                raise ToolError(f"Error executing tool {self.name}: {message}") from cause
            raise


def _describe(error: NanoserveError) -> str:
    if error.retry_after is not None:
        return f"{error.message} (retry in {error.retry_after:g}s)"
    return error.message


def _tool(fn: Callable[..., Any], name: str) -> Tool:
    title, annotations = TOOLS[name]
    tool = GatewayTool.from_function(
        fn, name=name, title=title, annotations=annotations, structured_output=True
    )
    tool.parameters["additionalProperties"] = False  # the input schema says what run() enforces
    return tool


@asynccontextmanager
async def _resource_errors() -> AsyncIterator[None]:
    try:
        yield
    except NotFound as exc:
        raise ResourceNotFoundError(exc.message) from exc
    except NanoserveError as exc:
        raise ResourceError(_describe(exc)) from exc


def _json(body: Any) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False)


class _ForwardingServer(MCPServer):
    """Over HTTP, each tool call and resource read reaches the REST API with the credential of
    the request that carried it (its key's scopes apply there); over stdio nothing changes."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        with _forwarding(context):
            return await super().call_tool(name, arguments, context)

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        with _forwarding(context):
            return await super().read_resource(uri, context)


def _forwarding(context: Any) -> AbstractContextManager[None]:
    request = getattr(getattr(context, "request_context", None), "request", None)
    headers = getattr(request, "headers", None)
    return forwarding(headers) if headers is not None else nullcontext()


def create_mcp_server(client: GatewayClient, *, allow_paths: bool) -> MCPServer:
    tools = NanoserveTools(client, allow_paths=allow_paths)
    server: MCPServer = _ForwardingServer(
        "nanoserve",
        title="nanoserve",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=[_tool(getattr(tools, name), name) for name in TOOLS],
        warn_on_duplicate_tools=True,
    )

    @server.resource(
        "nanoserve://collections",
        name="collections",
        title="Collections",
        description="Every collection with its document and chunk counts.",
        mime_type="application/json",
    )
    async def collections() -> str:
        async with _resource_errors():
            return _json({"collections": await client.list_collections()})

    @server.resource(
        "collection://{name}",
        name="collection",
        title="A collection and its documents",
        description="A collection with each document's name, source, title, chunks and learned value.",
        mime_type="application/json",
    )
    async def collection(name: str) -> str:
        async with _resource_errors():
            return _json(await client.get_collection(name))

    @server.resource(
        "trace://{trace_id}",
        name="trace",
        title="A query's trace",
        description="Intent, strategy, per-phase timings, the retrieved chunks with scores, the model's own "
        "answer, the final answer, quality and feedback of one query.",
        mime_type="application/json",
    )
    async def trace(trace_id: str) -> str:
        async with _resource_errors():
            return _json(await client.trace(trace_id))

    @server.resource(
        "nanoserve://models",
        name="models",
        title="Models and memory",
        description="Memory per device and the state of every configured model.",
        mime_type="application/json",
    )
    async def models() -> str:
        async with _resource_errors():
            return _json(await client.models_status())

    return server
