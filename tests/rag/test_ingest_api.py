"""``POST /v1/rag/collections/{name}/ingest`` (many files in one request, results per document,
streamed as NDJSON on request) and ``nanoserve ingest``'s progress bar, against a real gateway
with the mock embedding engine (each embeddings request takes 50 ms)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes import mock_rag_config
from gateway import Gateway

from nanoserve.rag.chunking import chunk_document
from nanoserve.rag.documents import parse_document


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = mock_rag_config(embed_ms=50)
    config["max_body_bytes"] = 256 * 1024
    config["rag"]["max_document_bytes"] = 128 * 1024  # one ingest request carries 256 KiB at most
    gw = Gateway(tmp_path_factory.mktemp("ingest-api"), config)
    try:
        with gw.client(timeout=600) as client:  # the embedding worker starts (slow on a busy machine)
            client.post("/v1/embeddings", json={"model": "mock-embed", "input": "warm up"}).raise_for_status()
        yield gw
    finally:
        gw.stop()


def note(i: int, paragraphs: int = 4) -> str:
    return "\n\n".join(
        f"Note {i}, paragraph {p}: " + "words of the paragraph " * 30 for p in range(paragraphs)
    )


def chunks_of(text: str) -> int:
    return len(chunk_document(parse_document(text, "text", name="n.txt")))


def fresh() -> str:
    return "c-" + uuid.uuid4().hex[:8]


def test_many_files_in_one_request_each_stored_or_failed_alone(gateway: Gateway) -> None:
    collection = fresh()
    files = [("file", (f"note-{i}.txt", note(i).encode(), "text/plain")) for i in range(6)]
    files.insert(3, ("file", ("binary.txt", b"\x00\x01\x02 not text", "text/plain")))
    files.append(("file", ("guide.md", b"# Guide\n\n## Install\n\nRun the installer.", "text/markdown")))
    with gateway.client(timeout=600) as client:
        r = client.post(f"/v1/rag/collections/{collection}/ingest", files=files)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["object"], body["documents"], body["created"], body["failed"]) == ("ingest", 8, 7, 1)
        by_name = {d["document"]: d for d in body["data"]}
        bad = by_name["binary.txt"]
        assert bad["status"] == "failed" and bad["status_code"] == 400
        assert "binary" in bad["error"]["message"] and bad["error"]["type"] == "invalid_request_error"
        assert all(by_name[f"note-{i}.txt"]["chunks"] == chunks_of(note(i)) for i in range(6))
        assert by_name["guide.md"]["title"] == "Guide"
        assert body["chunks"] == sum(d["chunks"] for d in body["data"] if d["status"] == "created")

        info = client.get(f"/v1/rag/collections/{collection}").json()
        assert info["documents"] == 7 and info["chunks"] == body["chunks"]

        again = client.post(f"/v1/rag/collections/{collection}/ingest", files=files).json()
        assert (again["unchanged"], again["failed"], again["chunks"]) == (7, 1, 0)


def test_streamed_results_names_and_sources(gateway: Gateway) -> None:
    collection = fresh()
    files = [("file", ("a.txt", note(1).encode())), ("file", ("b.txt", note(2).encode()))]
    data = {"name": ["guides/a.txt", "guides/b.txt"], "source": ["/srv/a.txt", "/srv/b.txt"]}
    with (
        gateway.client(timeout=600) as client,
        client.stream(
            "POST",
            f"/v1/rag/collections/{collection}/ingest",
            files=files,
            data=data,
            headers={"Accept": "application/x-ndjson"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in response.iter_lines() if line.strip()]
    assert [e["object"] for e in events] == ["ingest.document", "ingest.document", "ingest.summary"]
    assert {e["document"] for e in events[:2]} == {"guides/a.txt", "guides/b.txt"}
    assert events[-1]["created"] == 2
    with gateway.client(timeout=600) as client:
        docs = client.get(f"/v1/rag/collections/{collection}").json()["documents_list"]
    assert {(d["name"], d["source"]) for d in docs} == {
        ("guides/a.txt", "/srv/a.txt"),
        ("guides/b.txt", "/srv/b.txt"),
    }


@pytest.mark.parametrize(
    ("collection", "kwargs", "param"),
    [
        ("docs", {"json": {"name": "a.txt", "text": "hello"}}, "file"),
        ("docs", {"files": [("other", ("a.txt", b"x"))]}, "file"),
        ("docs", {"files": [("file", ("a.txt", b"x")), ("file", ("b.txt", b"y"))], "data": {"name": ["a.txt"]}}, "name"),
        ("docs", {"files": [("file", ("a.txt", b"x"))], "data": {"format": "docx"}}, "format"),
        ("bad name!", {"files": [("file", ("a.txt", b"x"))]}, "collection"),
    ],
)  # fmt: skip
def test_bad_requests_are_400_in_openai_shape(
    gateway: Gateway, collection: str, kwargs: dict[str, object], param: str
) -> None:
    with gateway.client(timeout=600) as client:
        r = client.post(f"/v1/rag/collections/{collection}/ingest", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


def test_files_over_the_request_limit_are_a_413(gateway: Gateway) -> None:
    files = [("file", (f"big-{i}.txt", b"word " * 20_000)) for i in range(3)]  # 100 KB each
    with gateway.client(timeout=600) as client:
        r = client.post(f"/v1/rag/collections/{fresh()}/ingest", files=files)
        assert r.status_code == 413 and "300000 bytes together" in r.json()["error"]["message"], r.text
        r = client.post(f"/v1/rag/collections/{fresh()}/ingest", files=files[:2])
        assert r.status_code == 200 and r.json()["created"] == 2, r.text


def test_cli_progress_bar_shows_files_and_chunks_per_second(gateway: Gateway, tmp_path: Path) -> None:
    """On a terminal, the bar moves with the documents stored and shows both rates."""
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    expected = 0
    for i in range(40):
        text = note(i, 3 + i % 4)
        (folder / ("sub" if i % 2 else "") / f"note-{i:02d}.txt").write_text(text)
        expected += chunks_of(text)
    (folder / "broken.txt").write_bytes(b"\x00binary")
    collection = fresh()
    controller, terminal = pty.openpty()
    cmd = [sys.executable, "-m", "nanoserve", "ingest", str(folder), "-c", collection, "--url", gateway.url]
    env = dict(os.environ, COLUMNS="160")
    proc = subprocess.Popen(cmd, stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    output = b""
    while True:
        try:
            data = os.read(controller, 4096)
        except OSError:  # the terminal closed: the command exited
            break
        if not data:
            break
        output += data
    proc.wait(timeout=60)
    os.close(controller)
    text = output.decode(errors="replace")
    rates = re.findall(r"([\d.]+) files/s, (\d+) chunks/s", text)
    assert len(rates) >= 2 and any(float(f) > 0 and int(c) > 0 for f, c in rates), text
    assert "broken.txt: " in text and "binary" in text  # the failure is named, the others go on
    assert f"41 files: 40 created, 1 failed; {expected} chunks" in text, text
    assert proc.returncode == 1
    with httpx.Client(base_url=gateway.url) as client:
        info = client.get(f"/v1/rag/collections/{collection}").json()
    assert (info["documents"], info["chunks"]) == (40, expected)
    assert "sub/note-01.txt" in {d["name"] for d in info["documents_list"]}
