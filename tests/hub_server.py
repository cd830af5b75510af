"""A model hub on loopback: the Hugging Face hub's file routes, enough for ``huggingface_hub``
(``HF_ENDPOINT``): ``HEAD``/``GET /<org>/<repo>/resolve/<revision>/<path>`` (with ``Range``, an
LFS file's SHA-256 as its ``X-Linked-Etag``) and ``GET /api/models/<org>/<repo>/tree/<revision>``.

Faults on demand: ``cut_after`` bytes closes the connection of a file's first download midway
(``huggingface_hub`` then resumes it with a ``Range`` request); ``wrong_sha`` advertises a
checksum the file does not have.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/?]+)")


@dataclass
class HubFile:
    source: Path

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        with self.source.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        self.sha256 = digest.hexdigest()
        self.size = self.source.stat().st_size


@dataclass
class Hub:
    repos: dict[str, dict[str, Path]]  # "org/repo" -> {path in repo: local file}
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the cut
    wrong_sha: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range

    def __post_init__(self) -> None:
        self.files = {repo: {p: HubFile(f) for p, f in files.items()} for repo, files in self.repos.items()}
        self._cut_done: set[str] = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:
                hub._serve(self, body=False)

            def do_GET(self) -> None:
                if (m := TREE.match(self.path)) is not None:
                    hub._tree(self, m["repo"])
                else:
                    hub._serve(self, body=True)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _not_found(self, handler: BaseHTTPRequestHandler) -> None:
        body = b'{"error": "Entry not found"}'
        handler.send_response(404)
        handler.send_header("X-Error-Code", "EntryNotFound")
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _tree(self, handler: BaseHTTPRequestHandler, repo: str) -> None:
        files = self.files.get(repo)
        if files is None:
            return self._not_found(handler)
        entries = [
            {
                "type": "file",
                "path": p,
                "size": f.size,
                "oid": f.sha256[:40],
                "lfs": {"oid": f.sha256, "size": f.size, "pointerSize": 134},
            }
            for p, f in files.items()
        ]
        body = json.dumps(entries).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _serve(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        rng = handler.headers.get("Range")
        self.requests.append((handler.command, handler.path, rng))
        m = RESOLVE.match(handler.path.split("?")[0])
        file = self.files.get(m["repo"], {}).get(m["path"]) if m else None
        if m is None or file is None:
            return self._not_found(handler)
        sha = "0" * 64 if m["path"] in self.wrong_sha else file.sha256
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
        length = file.size - start
        handler.send_response(206 if rng else 200)
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{sha}"',
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(file.size),
            "Accept-Ranges": "bytes",
            "Content-Length": str(length),
            "Content-Type": "application/octet-stream",
        }
        if rng:
            headers["Content-Range"] = f"bytes {start}-{file.size - 1}/{file.size}"
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if not body:
            return
        cut = self.cut_after.get(m["path"]) if m["path"] not in self._cut_done else None
        sent = 0
        with file.source.open("rb") as f:
            f.seek(start)
            while chunk := f.read(1 << 16):
                if cut is not None and sent + len(chunk) > cut:
                    handler.wfile.write(chunk[: cut - sent])
                    handler.wfile.flush()
                    self._cut_done.add(m["path"])
                    handler.close_connection = True
                    handler.connection.shutdown(2)  # the download breaks off midway
                    return
                handler.wfile.write(chunk)
                sent += len(chunk)
