"""The same tools over the real transports: stdio (``nanoserve mcp --url``, a subprocess) and
streamable HTTP (the gateway's own ``/mcp`` on 127.0.0.1), through the official client."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from gateway import Gateway, free_port
from mcp import Client, StdioServerParameters
from mcp_helpers import TOOLS, call, call_error, new_collection

from nanoserve.cli.main import cli


def stdio(url: str) -> StdioServerParameters:
    # the child must import this checkout, so it gets this environment (PYTHONPATH included)
    return StdioServerParameters(
        command=sys.executable, args=["-m", "nanoserve", "mcp", "--url", url], env=dict(os.environ)
    )


async def test_stdio_ingests_a_local_file_and_answers_from_it(mcp_gateway: Gateway, tmp_path: Path) -> None:
    manual = tmp_path / "dishwasher.md"
    manual.write_text(
        "# Dishwasher manual\n\n## Filter\n\nClean the dishwasher filter once a month: twist it out, rinse it under "
        "warm water and scrub it with a soft brush.\n\n## Salt\n\nRefill the salt container when the salt light is on.\n"
    )
    collection = new_collection()
    async with Client(stdio(mcp_gateway.url)) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        ingested = await call(client, "ingest", {"collection": collection, "path": str(manual)})
        assert [(d["document"], d["status"]) for d in ingested["documents"]] == [("dishwasher.md", "created")]
        answer = await call(
            client,
            "query",
            {"collection": collection, "query": "How often should I clean the filter?", "top_k": 1},
        )
        assert answer["citations"] and answer["citations"][0]["document"] == "dishwasher.md"
        assert "once a month" in answer["citations"][0]["text"]
        await call(client, "feedback", {"trace_id": answer["trace_id"], "rating": 0.5})
        values = await call(client, "document_values", {"collection": collection})
        assert [(v["document"], v["value"] > 0) for v in values["documents"]] == [("dishwasher.md", True)]
        trace = (await client.read_resource(f"trace://{answer['trace_id']}")).contents[0]
        assert answer["trace_id"] in trace.text  # type: ignore[union-attr]


async def test_stdio_without_a_gateway_reports_tool_errors(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with Client(stdio(dead)) as client:
        error = await call_error(client, "query", {"query": "anything"})
        assert f"cannot reach the gateway at {dead}" in error and "nanoserve serve" in error
        assert "cannot reach the gateway" in await call_error(client, "observability")
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS  # the session survives


async def test_streamable_http(mcp_gateway: Gateway, manuals: str) -> None:
    collection = new_collection()
    async with Client(mcp_gateway.url + "/mcp") as client:
        assert client.server_info is not None and client.server_info.name == "nanoserve"
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        text = "# Printer\n\nTo clear a paper jam, open the rear door and pull the sheet out slowly with both hands."
        ingested = await call(
            client, "ingest", {"collection": collection, "text": text, "name": "printer.md"}
        )
        assert ingested["created"] == 1
        # seed 000's tool, as its callers use it: over HTTP
        out = await call(client, "nano_llm_query", {"query": "How do I clear a paper jam?",
                                                     "userExpertise": "intermediate", "collection": collection})  # fmt: skip
        trace = json.loads((await client.read_resource(f"trace://{out['traceId']}")).contents[0].text)  # type: ignore[union-attr]
        assert out["results"] and {r["document"] for r in out["results"]} == {"printer.md"}
        assert [r["citation"] for r in out["results"]] == list(range(1, len(out["results"]) + 1))
        assert "rear door" in out["results"][0]["text"] and "[1]" in out["answer"]
        assert out["message"].startswith("Pipeline complete: ") and 0 < out["qualityScore"] <= 1
        assert (out["answer"], out["qualityScore"]) == (trace["answer"], trace["quality"]["overall"])
        assert out["executionTimeMs"] == pytest.approx(trace["total_ms"], abs=1)
        assert "'path' is not available over HTTP" in await call_error(
            client, "ingest", {"path": "/etc/hostname"}
        )
        assert "Invalid value for 'top_k'" in await call_error(client, "query", {"query": "x", "top_k": 51})
        listed = await call(client, "list_collections")
        assert {collection, manuals} <= {c["name"] for c in listed["collections"]}


async def test_streamable_http_with_the_2025_handshake(mcp_gateway: Gateway, manuals: str) -> None:
    """Clients that speak the initialize handshake (most released ones) get the same tools."""
    async with Client(mcp_gateway.url + "/mcp", mode="legacy") as client:
        assert client.protocol_version.startswith("2025-")
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        values = await call(client, "nano_llm_node_values", {"collection": manuals})
        assert values["collection"] == manuals
        assert "does not exist" in await call_error(
            client, "feedback", {"trace_id": "tr_missing", "rating": 1}
        )


def test_gateway_rejects_rebound_hosts(mcp_gateway: Gateway) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    rebound = httpx.post(mcp_gateway.url + "/mcp", json=body, headers={**headers, "Host": "attacker.example"})
    assert rebound.status_code == 421
    cross = httpx.post(
        mcp_gateway.url + "/mcp", json=body, headers={**headers, "Origin": "http://attacker.example"}
    )
    assert cross.status_code == 403


def test_cli_rejects_a_url_that_is_not_http() -> None:
    result = CliRunner().invoke(cli, ["mcp", "--url", "ftp://127.0.0.1"])
    assert result.exit_code == 2 and "must start with http:// or https://" in result.output
