"""The exception tree in Ollama's dialect, ``{"error": "..."}`` (OpenAI's is ``nanoserve.wire.errors``)."""

from __future__ import annotations

from starlette.responses import JSONResponse

from nanoserve.wire.errors import as_nanoserve_error, error_headers


def ollama_error_response(exc: BaseException) -> JSONResponse:
    err = as_nanoserve_error(exc)
    return JSONResponse({"error": err.message}, status_code=err.status, headers=error_headers(err))
