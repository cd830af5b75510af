"""A gateway killed (SIGKILL) in the middle of `nanoserve ingest --jobs 4` (uploads of many files
whose chunks share embedding requests): every document in the store is whole (all its chunks,
keyword rows and vectors) or absent, and running the same ingest again completes the rest,
skipping what is already there. With the mock embedding engine in the default suite (this is
about the store), and with the real default embedding model as a slow test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes import mock_rag_config
from gateway import Gateway, wait_until

from nanoserve.rag.chunking import chunk_document
from nanoserve.rag.documents import parse_document
from nanoserve.rag.store.sqlite import SqliteStore

MOCK = mock_rag_config(embed_ms=300)
REAL: dict[str, Any] = {}  # the default models: all-minilm:l6-v2 embeds
FILES = 40
NANOSERVE = (sys.executable, "-m", "nanoserve")


def write_corpus(folder: Path) -> dict[str, int]:
    """FILES text files of 6-14 paragraphs; returns each one's chunk count."""
    folder.mkdir()
    expected = {}
    for i in range(FILES):
        paragraphs = [f"Note {i}, paragraph {p}: " + "words of the paragraph " * 30 for p in range(6 + i % 9)]
        text = "\n\n".join(paragraphs)
        (folder / f"note-{i:02d}.txt").write_text(text)
        expected[f"note-{i:02d}.txt"] = len(chunk_document(parse_document(text, "text", name="n")))
    return expected


def stored_documents(data_dir: Path) -> dict[str, tuple[int, int, int]]:
    """name -> (chunks, keyword rows, vectors) as the store holds them."""
    store = SqliteStore(data_dir / "rag" / "rag.db")
    try:
        (cid,) = store._rows("SELECT id FROM collections WHERE name = 'notes'")[0]
        rows = store._rows(
            f"""SELECT d.name, COUNT(c.id),
                       (SELECT COUNT(*) FROM fts_{int(cid)} f WHERE f.rowid IN (SELECT id FROM chunks WHERE document_id = d.id)),
                       (SELECT COUNT(*) FROM vec_{int(cid)} v WHERE v.rowid IN (SELECT id FROM chunks WHERE document_id = d.id))
                FROM documents d LEFT JOIN chunks c ON c.document_id = d.id
                WHERE d.collection_id = ? GROUP BY d.id""",
            (cid,),
        )
        return {name: (n, fts, vec) for name, n, fts, vec in rows}
    finally:
        store.close()


def ingest(folder: Path, url: str) -> subprocess.Popen[str]:
    cmd = [
        *NANOSERVE,
        "ingest",
        str(folder),
        "-c",
        "notes",
        "--jobs",
        "4",
        "--url",
        url,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(
    "config", [pytest.param(MOCK, id="mock"), pytest.param(REAL, id="real", marks=pytest.mark.slow)]
)
def test_killed_gateway_leaves_whole_documents_and_a_rerun_completes(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    expected = write_corpus(tmp_path / "notes")
    data_dir = tmp_path / "data"
    gw = Gateway(data_dir, config, start_timeout=120)
    try:
        run = ingest(tmp_path / "notes", gw.url)
        with gw.client() as client:

            def some_stored() -> bool:
                r = client.get("/v1/rag/collections/notes")
                return r.status_code == 200 and r.json()["documents"] >= 8

            assert wait_until(some_stored, timeout=600, interval=0.05), gw.log()
        os.killpg(gw.proc.pid, signal.SIGKILL)  # the gateway and its workers, mid-ingest
        gw.proc.wait()
        run.communicate(timeout=120)
    finally:
        gw.stop()

    stored = stored_documents(data_dir)
    assert 8 <= len(stored) < FILES, "the kill should land mid-ingest"
    for name, (chunks, fts, vectors) in stored.items():
        assert chunks == fts == vectors == expected[name], name  # whole, never partial

    gw = Gateway(data_dir, config, start_timeout=120)
    try:
        out, err = ingest(tmp_path / "notes", gw.url).communicate(timeout=900)
        assert f"{len(stored)} unchanged" in out and f"{FILES - len(stored)} created" in out, out + err
    finally:
        gw.stop()
    final = stored_documents(data_dir)
    assert {n: c for n, (c, _, _) in final.items()} == expected
    assert all(c == f == v for c, f, v in final.values())
