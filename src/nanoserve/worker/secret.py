"""The per-instance secret of a worker bound beyond loopback (a cluster node, docs/cluster.md).

Its inference port is reachable from other machines, so every request (health and metrics
included) must carry the secret the gateway started it with; anything else gets a 401 in the
OpenAI error shape before it reaches a route.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from nanoserve.wire.headers import WORKER_SECRET_HEADER

_HEADER = WORKER_SECRET_HEADER.encode()
_REFUSED = json.dumps(
    {
        "error": {
            "message": f"this worker answers only its gateway (missing or wrong {WORKER_SECRET_HEADER})",
            "type": "authentication_error",
            "code": "invalid_worker_secret",
        }
    }
).encode()


class RequireSecret:
    def __init__(self, app: ASGIApp, secret: str):
        self.app = app
        self.secret = secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == _HEADER), b"")
        if hmac.compare_digest(given, self.secret):
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_REFUSED)).encode())]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": _REFUSED})
