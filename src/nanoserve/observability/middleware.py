"""The gateway's request middleware (pure ASGI): request ids, and one record per request.

It accepts the client's ``X-Request-Id`` (printable ASCII, at most 128 characters) or makes
one, returns it in the response's ``X-Request-Id`` header, and makes a ``RequestRecord``
current while the app runs. When the last byte has been sent (streams included) the record
becomes the request's metrics, its log line and its root span (``Telemetry.request_done``).
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nanoserve.observability.requests import RequestRecord, recording

if TYPE_CHECKING:
    from nanoserve.observability.telemetry import Telemetry

REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(r"[\x21-\x7e]{1,128}")


def request_id_from(value: str | None) -> str:
    """The client's request id if it is usable, else a new one."""
    if value is not None and _VALID_ID.fullmatch(value):
        return value
    return os.urandom(16).hex()  # what uuid4().hex is made of, without building a UUID


class RequestMiddleware:
    def __init__(self, app: ASGIApp, telemetry: Telemetry):
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        telemetry = self.telemetry
        headers = Headers(scope=scope)
        record = RequestRecord(
            request_id_from(headers.get("x-request-id")),
            scope["method"],
            scope["path"],
            telemetry.metrics,
            telemetry.tracing,
        )
        if telemetry.tracing.enabled:
            record.span = telemetry.tracing.start(
                f"{record.method} {record.path}",
                parent=telemetry.tracing.extract(headers),
                kind="server",
                attributes={
                    "http.request.method": record.method,
                    "url.path": record.path,
                    "nanoserve.request_id": record.request_id,
                },
            )
        raw_id = record.request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, raw_id)]
            await send(message)

        try:
            with recording(record):
                await self.app(scope, receive, send_with_id)
        except (asyncio.CancelledError, ClientDisconnect, OSError):
            record.error = record.error or "client disconnected"
            raise
        except BaseException as exc:
            record.status = record.status or 500
            if record.error is None:
                record.failed(exc)
            raise
        finally:
            route = scope.get("route")
            record.route = getattr(route, "path", None) or "unmatched"
            telemetry.request_done(record)
