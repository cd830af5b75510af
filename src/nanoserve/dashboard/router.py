"""The dashboard's routes: the page at ``/ui`` (static, open: it holds no data), its login, the
JSON it reads under ``/dashboard/`` (admin scope), the live feed, and ``/docs`` and ``/redoc``
with their assets served from installed packages (no CDN: they work offline).

    GET  /ui                       the page (ES modules under /ui/static/)
    POST /ui/login   {key}         an admin key for an HttpOnly, SameSite=Strict session cookie
    POST /ui/logout
    GET  /dashboard/session        whether keys are required, and who is logged in
    GET  /dashboard/overview       /models/status, with each model's last unload reason
    GET  /dashboard/series         ?window=300|900|3600: the per-second figures, folded for a chart
    GET  /dashboard/live           text/event-stream: one point per second, and each model's state
    GET  /dashboard/requests       ?model=&status=ok|error&q=&limit=: recent requests, newest first
    GET  /dashboard/requests/{id}  one of them
    GET  /dashboard/events         recent lifecycle events (load, ready, unloaded with its reason)
    GET  /dashboard/logs           ?source=gateway|<model or replica>: the tail of a log
    GET  /dashboard/usage          requests and tokens per API key (GET /admin/keys/usage's)
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from starlette.staticfiles import StaticFiles

from nanoserve.auth import context
from nanoserve.auth.middleware import Gate
from nanoserve.auth.sessions import clear_cookie_header, set_cookie_header
from nanoserve.dashboard.recorder import Recorder
from nanoserve.dashboard.series import WINDOWS
from nanoserve.errors import BadRequest, Forbidden, NotFound, Unauthorized
from nanoserve.wire.body import parse_body

STATIC = Path(str(files("nanoserve.dashboard") / "static"))
STYLESHEET = '<link rel="stylesheet" href="/ui/static/style.css">'
SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def vendor_dir() -> Path:
    """Swagger UI's and ReDoc's files, as the ``fastapi-standalone-docs`` package ships them."""
    return Path(str(files("fastapi_standalone_docs") / "static"))


@functools.cache
def page_html() -> str:
    """index.html with style.css inlined: the first paint waits for no second request."""
    html = (STATIC / "index.html").read_text()
    css = (STATIC / "style.css").read_text()
    return html.replace(STYLESHEET, f"<style>\n{css}</style>")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=512)


def _recorder(request: Request) -> Recorder:
    recorder: Recorder = request.app.state.dashboard
    return recorder


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", param=name) from None
    if not low <= number <= high:
        raise BadRequest(f"{name} must be between {low} and {high}", param=name)
    return number


def create_page_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/ui")
    @router.get("/ui/")
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html(), headers={"cache-control": "no-cache"})

    @router.post("/ui/login")
    async def login(request: Request) -> JSONResponse:
        gate: Gate = request.app.state.gate
        body = await parse_body(request, Login, 64 * 1024)
        principal = gate.principal(body.key.strip(), None)
        if principal is None or principal.internal:
            raise Unauthorized("Invalid or revoked API key")
        if "admin" not in principal.scopes:
            raise Forbidden(f"The API key '{principal.name}' lacks the 'admin' scope", param="scope")
        session = gate.sessions.open(body.key.strip())
        response = JSONResponse({"object": "session", "key": principal.name})
        response.headers["set-cookie"] = set_cookie_header(session, secure=request.url.scheme == "https")
        return response

    @router.post("/ui/logout")
    async def logout(request: Request) -> JSONResponse:
        gate: Gate = request.app.state.gate
        gate.sessions.close(request.headers.get("cookie"))
        response = JSONResponse({"object": "session", "key": None})
        response.headers["set-cookie"] = clear_cookie_header()
        return response

    return router


def create_docs_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    page = {"openapi_url": "/openapi.json", "title": "nanoserve API"}
    favicon = "/ui/vendor/fastapi/favicon.png"

    @router.get("/docs")
    async def swagger() -> HTMLResponse:
        css, js = "/ui/vendor/swagger/swagger-ui.css", "/ui/vendor/swagger/swagger-ui-bundle.js"
        return get_swagger_ui_html(
            **page, swagger_js_url=js, swagger_css_url=css, swagger_favicon_url=favicon
        )

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        js = "/ui/vendor/redoc/redoc.standalone.js"
        return get_redoc_html(**page, redoc_js_url=js, redoc_favicon_url=favicon, with_google_fonts=False)

    @router.get("/redoc/logo-mini.svg")
    async def redoc_logo() -> FileResponse:  # the packaged ReDoc asks for it beside the page
        return FileResponse(vendor_dir() / "redoc" / "logo-mini.svg")

    return router


def create_dashboard_router() -> APIRouter:
    router = APIRouter(prefix="/dashboard", include_in_schema=False)

    @router.get("/session")
    async def session(request: Request) -> dict[str, Any]:
        principal = context.current_principal()
        gate: Gate = request.app.state.gate
        return {
            "auth_required": gate.required,
            "key": principal.name if principal is not None else None,
            "windows": list(WINDOWS),
        }

    @router.get("/overview")
    async def overview(request: Request) -> dict[str, Any]:
        recorder = _recorder(request)
        status = await recorder.orchestrator.status()
        for model in status["models"]:
            model["last_unload"] = recorder.last_unload.get(model["id"])
        return {**status, "now": time.time(), "started": recorder.started}

    @router.get("/series")
    async def series(request: Request, window: str | None = None) -> dict[str, Any]:
        seconds = _int(window, "window", 300, 10, 3600)
        return _recorder(request).series.window(int(time.time()), seconds)

    @router.get("/live")
    async def live(request: Request) -> StreamingResponse:
        recorder = _recorder(request)

        async def feed() -> AsyncIterator[bytes]:
            seen = recorder.tick
            yield b"retry: 2000\n\n"
            if recorder.latest:
                yield recorder.latest
            while not recorder.stopping:
                seen, message = await recorder.next_message(seen)
                if recorder.stopping:
                    return
                yield message if message is not None else b": keep-alive\n\n"

        return StreamingResponse(feed(), media_type="text/event-stream", headers=SSE_HEADERS)

    @router.get("/requests")
    async def requests(
        request: Request, model: str | None = None, status: str | None = None, q: str | None = None,
        limit: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        if status not in (None, "", "ok", "error"):
            raise BadRequest("status must be 'ok' or 'error'", param="status")
        rows = _recorder(request).recent_requests(
            model=model or None,
            status=status or None,
            text=q or None,
            limit=_int(limit, "limit", 200, 1, 1000),
        )
        return {"object": "list", "data": rows}

    @router.get("/requests/{request_id}")
    async def one_request(request: Request, request_id: str) -> dict[str, Any]:
        entry = _recorder(request).request(request_id)
        if entry is None:
            raise NotFound(f"No recent request '{request_id}' (only the last ones are kept)", param="id")
        return entry

    @router.get("/events")
    async def events(request: Request, limit: str | None = None) -> dict[str, Any]:
        return {"object": "list", "data": _recorder(request).recent_events(_int(limit, "limit", 100, 1, 500))}

    @router.get("/logs")
    async def logs(request: Request, source: str = "gateway", lines: str | None = None) -> dict[str, Any]:
        recorder = _recorder(request)
        count = _int(lines, "lines", 200, 1, 1000)
        sources = ["gateway", *sorted(recorder.orchestrator.instances)]
        if source == "gateway":
            text = recorder.logs.tail(count)
        elif source in recorder.orchestrator.instances:
            worker = recorder.orchestrator.instances[source].worker
            text = "" if worker is None else "\n".join(worker.log_tail().splitlines()[-count:])
        else:
            raise NotFound(f"No log '{source}' (one of: {', '.join(sources)})", param="source")
        return {"source": source, "sources": sources, "text": text}

    @router.get("/usage")
    async def usage(request: Request) -> dict[str, Any]:
        gate: Gate = request.app.state.gate
        return gate.usage.snapshot()

    return router


def install(app: FastAPI, recorder: Recorder | None) -> None:
    """``/docs`` and ``/redoc`` with local assets, and (unless ``recorder`` is None: ``dashboard:
    false``) the page and its JSON, reading ``recorder`` as ``app.state.dashboard``."""
    app.mount("/ui/vendor", StaticFiles(directory=vendor_dir()), name="ui-vendor")
    app.include_router(create_docs_router())
    if recorder is None:
        return
    app.state.dashboard = recorder
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(create_page_router())
    app.include_router(create_dashboard_router())
