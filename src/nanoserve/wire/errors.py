"""The exception tree as OpenAI errors: the worker's dialect, and the gateway's OpenAI routes'.

Also the way back (``error_from_openai_body``: a worker's error body as a typed error, for the
gateway to render in another dialect) and validation errors as 400s. The Ollama rendering is the
gateway's own (``nanoserve.api.errors``).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse

from nanoserve.errors import BadRequest, NanoserveError

log = logging.getLogger("nanoserve.api")  # its name from before the move to wire


def bad_request_from_validation(exc: ValidationError) -> BadRequest:
    """The first validation problem as a 400 naming the parameter (not FastAPI's 422).

    A value that matches no member of a union produces one error per member, each with the
    member's name appended to the location: the parameter is their common prefix.
    """
    errors = exc.errors()
    err = errors[0]
    loc = os.path.commonprefix([e["loc"] for e in errors if e["loc"][:1] == err["loc"][:1]])
    param = ".".join(str(p) for p in loc) or None
    msg = err["msg"]
    if err["type"] == "missing":
        msg = f"'{param}' is a required property"
    elif param:
        msg = f"Invalid value for '{param}': {msg}"
    return BadRequest(msg, param=param)


def as_nanoserve_error(exc: BaseException) -> NanoserveError:
    if isinstance(exc, NanoserveError):
        return exc
    if isinstance(exc, ValidationError):
        return bad_request_from_validation(exc)
    log.exception("unhandled error", exc_info=exc)
    return NanoserveError(f"Internal server error: {type(exc).__name__}: {exc}")


def openai_error_body(exc: NanoserveError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}


def error_headers(exc: NanoserveError) -> dict[str, str] | None:
    """The response headers an error adds (``Retry-After``), in every dialect."""
    if exc.retry_after is None:
        return None
    return {"Retry-After": str(max(1, round(exc.retry_after)))}


def openai_error_response(exc: BaseException) -> JSONResponse:
    err = as_nanoserve_error(exc)
    return JSONResponse(openai_error_body(err), status_code=err.status, headers=error_headers(err))


def openai_sse_error(exc: BaseException) -> bytes:
    """A final SSE event carrying the error, for failures after a stream has started."""
    return b"data: " + json.dumps(openai_error_body(as_nanoserve_error(exc))).encode() + b"\n\n"


def error_from_openai_body(status: int, body: bytes) -> NanoserveError:
    """Rebuild a typed error from a worker's OpenAI error response (for translation to Ollama)."""
    try:
        payload = json.loads(body)["error"]
        message = payload.get("message") or "unknown error"
        param = payload.get("param")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, param = body.decode(errors="replace")[:500] or f"HTTP {status}", None
    cls = _STATUS_TO_ERROR.get(status, NanoserveError)
    err = cls.__new__(cls)
    NanoserveError.__init__(err, message, param=param)
    return err


def _status_map() -> dict[int, type[NanoserveError]]:
    from nanoserve import errors as e

    return {
        400: e.BadRequest,
        404: e.ModelNotFound,
        409: e.Conflict,
        413: e.PayloadTooLarge,
        429: e.QueueFull,
        503: e.Unavailable,
        507: e.InsufficientMemory,
    }


_STATUS_TO_ERROR = _status_map()
