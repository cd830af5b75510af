"""What the gate (nanoserve.auth) adds per request: the middleware around a do-nothing app,
in-process, with a stored key (the data_version check, hash and lookup, limits, usage).

    PYTHONPATH=src python benchmarks/auth_overhead.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from nanoserve.auth.middleware import AuthMiddleware, Gate
from nanoserve.auth.store import Limits
from nanoserve.config import Settings

N = 20_000


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def call(app: object, headers: list[tuple[bytes, bytes]]) -> None:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: object) -> None:
        return None

    await app(scope, receive, send)  # type: ignore[operator]


async def per_request(app: object, headers: list[tuple[bytes, bytes]]) -> float:
    for _ in range(500):
        await call(app, headers)
    began = time.perf_counter()
    for _ in range(N):
        await call(app, headers)
    return (time.perf_counter() - began) / N * 1e6


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), auth={"required": True})
        gate = Gate(settings)
        secret, _ = gate.store.create("bench", ["inference"], limits=Limits(rpm=10**9, tpm=10**9))
        app = AuthMiddleware(inner, gate, lambda path, exc: JSONResponse({}, status_code=exc.status))
        base = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
        keyed = [*base, (b"authorization", f"Bearer {secret}".encode())]
        bare = await per_request(inner, base)
        gated = await per_request(app, keyed)
        print(f"without the gate: {bare:.1f} us/request")
        print(f"with a key (limits on): {gated:.1f} us/request, the gate adds {gated - bare:.1f} us")
        gate.close()


if __name__ == "__main__":
    asyncio.run(main())
