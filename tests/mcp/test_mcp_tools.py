"""The tools through the official MCP client, in memory, against a real gateway with the default
models: listing, ingestion, queries with citations, feedback seen through document_values, the
seed-000 aliases, observability, model management, resources and bad inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gateway import Gateway
from mcp.shared.exceptions import MCPError
from mcp_helpers import MANUALS, TOOLS, call, call_error, in_memory, new_collection, read_json

QUALITY = {
    "overall",
    "relevance",
    "grounding",
    "citation_validity",
    "coverage",
    "retrieval",
    "question_coverage",
}


async def test_tools_are_listed_with_typed_schemas(mcp_gateway: Gateway) -> None:
    async with in_memory(mcp_gateway) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.title and tool.description, tool.name
        assert tool.input_schema["type"] == "object" and tool.input_schema["additionalProperties"] is False
        assert tool.output_schema is not None and tool.output_schema["type"] == "object", tool.name
    query = tools["query"].input_schema
    assert query["required"] == ["query"]
    assert set(query["properties"]) == {"query", "collection", "top_k", "strategy"}
    top_k = query["properties"]["top_k"]["anyOf"][0]
    assert (top_k["type"], top_k["minimum"], top_k["maximum"]) == ("integer", 1, 50)
    assert {"answer", "citations", "quality", "trace_id"} <= set(tools["query"].output_schema["required"])  # type: ignore[index]
    assert set(tools["feedback"].input_schema["required"]) == {"trace_id", "rating"}
    alias = tools["nano_llm_query"]
    assert set(alias.input_schema["properties"]) == {"query", "userExpertise", "collection"}
    assert alias.input_schema["required"] == ["query"]
    assert alias.output_schema is not None
    assert {"results", "qualityScore", "executionTimeMs", "traceId", "message"} <= set(
        alias.output_schema["required"]
    )
    assert tools["unload_model"].annotations.destructive_hint is True  # type: ignore[union-attr]
    assert tools["document_values"].annotations.read_only_hint is True  # type: ignore[union-attr]


async def test_ingest_text_file_and_folder(mcp_gateway: Gateway) -> None:
    collection = new_collection()
    text = "# Parking\n\nVisitors park on level two of the garage. The gate code is 4711."
    args = {
        "collection": collection,
        "text": text,
        "format": "markdown",
        "source": "https://intranet.example/parking",
    }
    async with in_memory(mcp_gateway) as client:
        first = await call(client, "ingest", args)
        (doc,) = first["documents"]
        assert (first["created"], first["chunks"], doc["status"], doc["title"]) == (
            1,
            1,
            "created",
            "Parking",
        )
        assert doc["document"].startswith("text-") and doc["document"].endswith(".md")
        again = await call(client, "ingest", args)  # same text, same name: nothing to do
        assert (again["unchanged"], again["chunks"], again["documents"][0]["document"]) == (
            1,
            0,
            doc["document"],
        )

        file = await call(client, "ingest", {"collection": collection, "path": str(MANUALS / "descaling.md"),
                                             "name": "kettle.md"})  # fmt: skip
        assert [(d["document"], d["status"], d["title"]) for d in file["documents"]] == [
            ("kettle.md", "created", "Descaling a kettle")
        ]
        reports: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            reports.append((progress, total, message))

        folder = await call(client, "ingest", {"collection": collection, "path": str(MANUALS)}, on_progress)
        assert reports == [
            (i, 3, f"ingesting {name}") for i, name in enumerate(sorted(p.name for p in MANUALS.iterdir()))
        ]
        assert sorted(d["document"] for d in folder["documents"]) == [
            "chain-care.md",
            "descaling.md",
            "houseplants.txt",
        ]
        assert (folder["created"], folder["failed"]) == (3, [])
        assert folder["chunks"] == sum(d["chunks"] for d in folder["documents"]) >= 7

        listed = {c["name"]: c for c in (await call(client, "list_collections"))["collections"]}
        assert listed[collection]["documents"] == 5 and listed[collection]["dimensions"] == 384
        detail = await read_json(client, f"collection://{collection}")
        sources = {d["name"]: d["source"] for d in detail["documents_list"]}
        assert sources[doc["document"]] == "https://intranet.example/parking"
        assert sources["houseplants.txt"] == str(MANUALS / "houseplants.txt")


async def test_folder_ingestion_reports_the_files_that_failed(mcp_gateway: Gateway, tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("# Lamp\n\nThe desk lamp takes an E14 bulb of at most 25 watts.")
    (tmp_path / "blob.txt").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "image.png").write_bytes(b"\x89PNG")  # not a document type: not even tried
    collection = new_collection()
    async with in_memory(mcp_gateway) as client:
        result = await call(client, "ingest", {"collection": collection, "path": str(tmp_path)})
    assert [(d["document"], d["status"]) for d in result["documents"]] == [("good.md", "created")]
    (failure,) = result["failed"]
    assert failure["document"] == "blob.txt" and "binary" in failure["error"]


async def test_query_answers_with_citations_and_a_trace(
    mcp_gateway: Gateway, vinegar_answer: dict[str, Any]
) -> None:
    result = vinegar_answer
    async with in_memory(mcp_gateway) as client:
        trace = await read_json(client, f"trace://{result['trace_id']}")
    assert result["answer_mode"] in ("generated", "extractive")
    citations = result["citations"]
    assert citations and citations[0]["document"] == "descaling.md"
    for n, citation in enumerate(citations, start=1):
        assert citation["n"] == n and f"[{n}]" in result["answer"]
    assert "one hour" in " ".join(c["text"] for c in citations)
    assert set(result["quality"]) == QUALITY and 0 < result["quality"]["overall"] <= 1
    assert {"embed", "retrieve", "generate", "total"} <= set(result["timings_ms"])
    # the trace behind the answer: the cited chunks were retrieved, under the same numbers
    assert (trace["id"], trace["answer"], trace["quality"]) == (
        result["trace_id"],
        result["answer"],
        result["quality"],
    )
    assert len(trace["retrieved"]) == 2  # top_k
    retrieved = {c["chunk_id"]: c for c in trace["retrieved"]}
    for citation in citations:
        assert retrieved[citation["chunk_id"]]["citation"] == citation["n"]
        assert retrieved[citation["chunk_id"]]["text"] == citation["text"]


async def test_feedback_shows_in_document_values(
    mcp_gateway: Gateway, manuals: str, vinegar_answer: dict[str, Any]
) -> None:
    top = vinegar_answer["citations"][0]
    async with in_memory(mcp_gateway) as client:
        before = await call(client, "document_values", {"collection": manuals})
        feedback = await call(client, "feedback", {"trace_id": vinegar_answer["trace_id"], "rating": 1})
        values = await call(client, "document_values", {"collection": manuals})
        nodes = await call(client, "nano_llm_node_values", {"collection": manuals})
        twice = await call_error(client, "feedback", {"trace_id": vinegar_answer["trace_id"], "rating": -1})
    assert top["chunk_id"] not in {v["id"] for v in before["chunks"]}  # no feedback yet
    credited = {c["id"]: c for c in feedback["chunks"]}
    assert credited[top["chunk_id"]]["credit"] == 1.0 and credited[top["chunk_id"]]["new"] > 0

    chunks = {v["id"]: v for v in values["chunks"]}
    assert chunks[top["chunk_id"]]["value"] == pytest.approx(credited[top["chunk_id"]]["new"])
    assert chunks[top["chunk_id"]]["feedback"] == 1
    assert {v["document"]: v["value"] for v in values["documents"]}["descaling.md"] > 0
    assert sorted((n["kind"], n["nodeId"], n["value"]) for n in nodes["nodeValues"]) == sorted(
        (v["kind"], v["id"], v["value"]) for v in [*values["documents"], *values["chunks"]]
    )
    assert "already has feedback" in twice


async def test_seed_000_aliases(mcp_gateway: Gateway, manuals: str, vinegar_answer: dict[str, Any]) -> None:
    """nano_llm_query answering (with citations) is tested over HTTP, as the seed's callers use it;
    here: a refusal in the seed's shape, and the seed's observability over the same figures."""
    async with in_memory(mcp_gateway) as client:
        refused = await call(client, "nano_llm_query", {"query": "Who won the football world cup in 2018?",
                                                         "userExpertise": "expert", "collection": manuals})  # fmt: skip
        trace = await read_json(client, f"trace://{refused['traceId']}")
        observability = await call(client, "nano_llm_observability")
        full = await call(client, "observability")
    assert (refused["results"], refused["message"]) == (
        [],
        "No answer: the documents do not cover this question.",
    )
    assert (trace["status"], trace["answer"]) == ("refused", refused["answer"])
    assert refused["qualityScore"] == trace["quality"]["overall"]
    assert refused["executionTimeMs"] == pytest.approx(trace["total_ms"], abs=1)

    assert observability["status"] == "operational"
    metrics = observability["metrics"]
    assert metrics["totalQueries"] == sum(c["queries"] for c in full["pipeline"]) >= 2
    assert metrics["successfulQueries"] == sum(c["queries"] - c["errors"] for c in full["pipeline"])
    assert metrics["averageExecutionTime"] > 0 and 0 < metrics["averageQualityScore"] <= 1
    assert {c["collection"] for c in observability["collections"]} == {
        c["collection"] for c in full["pipeline"]
    }


async def test_observability_reports_pipeline_and_serving(mcp_gateway: Gateway, manuals: str) -> None:
    async with in_memory(mcp_gateway) as client:
        await call(client, "nano_llm_query", {"query": "What is the capital of Peru?", "collection": manuals})
        mine = await call(client, "observability", {"collection": manuals})
    assert mine["ready"] is True and mine["gateway"] == mcp_gateway.url
    (pipeline,) = mine["pipeline"]
    assert pipeline["collection"] == manuals
    assert pipeline["queries"] == pipeline["answered"] + pipeline["refused"] + pipeline["errors"] >= 1
    serving = mine["serving"]
    models = {m["model"]: m for m in serving["models"]}
    embedder = models["all-minilm:l6-v2"]
    assert embedder["requests"] > 0 and embedder["prompt_tokens"] > 0 and embedder["latency_mean_s"] > 0
    assert embedder["latency_p50_s"] <= embedder["latency_p95_s"]
    assert serving["requests"] >= sum(m["requests"] for m in serving["models"])
    assert serving["prompt_tokens"] == sum(m["prompt_tokens"] for m in serving["models"])


async def test_resources_browse_collections_and_traces(mcp_gateway: Gateway, manuals: str) -> None:
    async with in_memory(mcp_gateway) as client:
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        collections = await read_json(client, "nanoserve://collections")
        detail = await read_json(client, f"collection://{manuals}")
        with pytest.raises(MCPError, match="trace 'tr_missing' does not exist"):
            await client.read_resource("trace://tr_missing")
        with pytest.raises(MCPError, match="does not exist"):
            await client.read_resource("collection://no-such-collection")
        assert (await call(client, "list_collections"))["collections"]  # the session goes on
    assert resources == {"nanoserve://collections", "nanoserve://models"}
    assert templates == {"collection://{name}", "trace://{trace_id}"}
    assert manuals in {c["name"] for c in collections["collections"]}
    assert sorted(d["name"] for d in detail["documents_list"]) == [
        "chain-care.md",
        "descaling.md",
        "houseplants.txt",
    ]


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("query", {}, "'query' is a required property"),
        ("query", {"query": "x", "top_k": 0}, "Invalid value for 'top_k'"),
        ("query", {"query": "x", "strategy": "magic"}, "Invalid value for 'strategy'"),
        ("query", {"query": "   "}, "'query' must not be blank"),
        (
            "query",
            {"query": "x", "collection": "no-such-collection"},
            "collection 'no-such-collection' does not exist",
        ),
        ("query", {"query": "x", "temperature": 1}, "unknown argument 'temperature'"),
        ("ingest", {"collection": "c"}, "give either 'text' or 'path'"),
        ("ingest", {"text": "a", "path": "/tmp"}, "give either 'text' or 'path'"),
        ("ingest", {"path": "/no/such/folder"}, "no such file or folder: /no/such/folder"),
        ("ingest", {"path": str(MANUALS), "name": "one.md"}, "'name' is one document's"),
        ("ingest", {"text": "hello", "collection": "bad name"}, "invalid collection name 'bad name'"),
        ("ingest", {"text": "# Only a heading", "format": "markdown"}, "no text"),
        ("feedback", {"trace_id": "tr_missing", "rating": 1}, "trace 'tr_missing' does not exist"),
        ("feedback", {"trace_id": "tr_x", "rating": 2}, "Invalid value for 'rating'"),
        ("document_values", {"limit": 0}, "Invalid value for 'limit'"),
        ("nano_llm_query", {"query": "x", "userExpertise": "guru"}, "Invalid value for 'userExpertise'"),
        ("nano_llm_query", {"query": "x"}, "collection 'default' does not exist"),
        ("no_such_tool", {}, "Unknown tool: no_such_tool"),
    ],
)
async def test_bad_inputs_are_tool_errors(
    mcp_gateway: Gateway, tool: str, arguments: dict[str, Any], message: str
) -> None:
    async with in_memory(mcp_gateway) as client:
        error = await call_error(client, tool, arguments)
        assert message in error
        assert error.startswith(f"Error executing tool {tool}: ") or tool == "no_such_tool"
        assert await client.list_tools()  # the session is still usable


async def test_path_ingestion_is_refused_when_not_allowed(mcp_gateway: Gateway, tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nA secret on the server's disk.")
    async with in_memory(mcp_gateway, allow_paths=False) as client:
        error = await call_error(client, "ingest", {"path": str(note)})
    assert "'path' is not available over HTTP" in error


async def test_models_status_unload_and_load(mcp_gateway: Gateway) -> None:
    async with in_memory(mcp_gateway) as client:
        await call(client, "load_model", {"model": "smollm2:135m"})  # loaded, whatever ran before
        status = await call(client, "models_status")
        models = {m["id"]: m for m in status["models"]}
        assert {"smollm2:135m", "all-minilm:l6-v2"} <= set(models) and status["devices"][0]["name"] == "ram"
        assert models["smollm2:135m"]["state"] == "ready" and models["smollm2:135m"]["loaded_at"]

        unloaded = await call(client, "unload_model", {"model": "smollm2:135m"})
        assert (unloaded["id"], unloaded["state"], unloaded["in_flight"]) == ("smollm2:135m", "stopped", 0)
        after = {m["id"]: m for m in (await call(client, "models_status"))["models"]}
        assert after["smollm2:135m"]["state"] == "stopped" and after["smollm2:135m"]["loaded_at"] is None

        plan = await call(client, "load_model", {"model": "smollm2:135m", "dry_run": True})
        assert plan["dry_run"] is True and plan["model"] is None
        assert plan["plan"]["fits"] is True and plan["plan"]["would_evict"] == []
        still = {m["id"]: m["state"] for m in (await call(client, "models_status"))["models"]}
        assert still["smollm2:135m"] == "stopped"  # a dry run loads nothing

        # loaded again (by its alias), so the tests after this one find it ready
        loaded = (await call(client, "load_model", {"model": "smollm2", "keep_alive": "10m", "priority": 1}))[
            "model"
        ]
        assert (loaded["id"], loaded["state"], loaded["priority"]) == ("smollm2:135m", "ready", 1)
        assert loaded["measured_mib"] > 0 and loaded["expires_at"] and loaded["loaded_at"]

        assert "does not exist" in await call_error(client, "load_model", {"model": "no-such-model"})
        assert "does not exist" in await call_error(client, "unload_model", {"model": "no-such-model"})
        assert "Invalid value for 'model'" in await call_error(client, "unload_model", {"model": ""})
        assert "Invalid value for 'keep_alive'" in await call_error(
            client, "load_model", {"model": "smollm2:135m", "keep_alive": [1]}
        )
