"""A gateway killed (SIGKILL) in the middle of `nanoserve ingest --jobs 4`: every document in the
store is whole (all its chunks, keyword rows and vectors) or absent, and running the same ingest
again completes the rest, skipping what is already there. Mock models: this is about the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway import MOCK_CONFIG, Gateway, wait_until

from nanoserve.rag.chunking import chunk_document
from nanoserve.rag.documents import parse_document
from nanoserve.rag.store.sqlite import SqliteStore

CONFIG = {
    "models": [
        MOCK_CONFIG["models"][0],
        {"id": "mock-embed", "engine": "mock-embedding", "kind": "embedding", "options": {"ttft_ms": 150}},
    ],
    "rag": {"embedding_model": "mock-embed", "generation_model": "mock-chat"},
}
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


def test_killed_gateway_leaves_whole_documents_and_a_rerun_completes(tmp_path: Path) -> None:
    expected = write_corpus(tmp_path / "notes")
    data_dir = tmp_path / "data"
    gw = Gateway(data_dir, CONFIG)
    try:
        run = ingest(tmp_path / "notes", gw.url)
        with gw.client() as client:

            def some_stored() -> bool:
                r = client.get("/v1/rag/collections/notes")
                return r.status_code == 200 and r.json()["documents"] >= 8

            assert wait_until(some_stored, timeout=120, interval=0.05), gw.log()
        os.killpg(gw.proc.pid, signal.SIGKILL)  # the gateway and its workers, mid-ingest
        gw.proc.wait()
        run.communicate(timeout=120)
    finally:
        gw.stop()

    stored = stored_documents(data_dir)
    assert 8 <= len(stored) < FILES, "the kill should land mid-ingest"
    for name, (chunks, fts, vectors) in stored.items():
        assert chunks == fts == vectors == expected[name], name  # whole, never partial

    gw = Gateway(data_dir, CONFIG)
    try:
        started = time.monotonic()
        out, err = ingest(tmp_path / "notes", gw.url).communicate(timeout=300)
        assert f"{len(stored)} unchanged" in out and f"{FILES - len(stored)} created" in out, out + err
        assert time.monotonic() - started < 120
    finally:
        gw.stop()
    final = stored_documents(data_dir)
    assert {n: c for n, (c, _, _) in final.items()} == expected
    assert all(c == f == v for c, f, v in final.values())
