"""Read and validate request bodies: size limit, JSON, pydantic model; every failure a 4xx."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request

from nanoserve.errors import BadRequest, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)
DEFAULT_LIMIT = 32 * 1024 * 1024


async def read_body(request: Request, limit: int = DEFAULT_LIMIT) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BadRequest("Request body is empty; expected a JSON object")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object")
    return data


async def parse_body(request: Request, model: type[M], limit: int = DEFAULT_LIMIT) -> M:
    """The body validated as ``model`` (a ValidationError is rendered as a 400 at the edge)."""
    return model.model_validate(parse_json_object(await read_body(request, limit)))
