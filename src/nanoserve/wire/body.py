"""Read and validate request bodies: size limit, JSON, depth, Unicode, pydantic model; every
failure a 4xx.

JSON is bounded before anything walks it: nesting deeper than ``MAX_JSON_DEPTH`` and strings with
lone surrogates (``"\\ud800"``, valid JSON but not Unicode text: no engine can encode them) are
400s naming the problem, not a ``RecursionError`` or ``UnicodeEncodeError`` 500 further in.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request

from nanoserve.errors import BadRequest, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)
DEFAULT_LIMIT = 32 * 1024 * 1024
MAX_JSON_DEPTH = 64  # arrays and objects inside each other; JSON schemas in tools stay far below


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


def loads(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with every failure a 400: bad JSON, too deep, lone surrogates."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadRequest(f"Request body is nested too deeply (the limit is {max_depth} levels)") from None
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"Request body is not valid JSON: {exc}") from exc
    check_json(data, max_depth, surrogates=_may_have_surrogates(raw))
    return data


def _may_have_surrogates(raw: bytes | str) -> bool:
    """Only an escape can put a lone surrogate in parsed JSON (UTF-8 cannot encode one)."""
    if isinstance(raw, str):
        return True
    return b"\\ud" in raw or b"\\uD" in raw


def check_json(data: Any, max_depth: int = MAX_JSON_DEPTH, *, surrogates: bool = True) -> None:
    """Raise a 400 for nesting deeper than ``max_depth`` or a string that is not valid Unicode
    (a lone surrogate). Iterative: the depth of the input cannot exhaust the stack."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            if depth > max_depth:
                raise BadRequest(f"Request body is nested too deeply (the limit is {max_depth} levels)")
            for key, item in value.items():
                if surrogates:
                    _check_text(key, path or "body")
                if isinstance(item, (dict, list)) or (surrogates and isinstance(item, str)):
                    stack.append((item, depth + 1, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            if depth > max_depth:
                raise BadRequest(f"Request body is nested too deeply (the limit is {max_depth} levels)")
            for i, item in enumerate(value):
                if isinstance(item, (dict, list)) or (surrogates and isinstance(item, str)):
                    stack.append((item, depth + 1, f"{path}.{i}" if path else str(i)))
        elif isinstance(value, str):
            _check_text(value, path)


def _check_text(text: str, path: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        where = f" in '{path}'" if path else ""
        raise BadRequest(
            f"Invalid Unicode{where}: a lone surrogate escape (\\ud800-\\udfff) is not text",
            param=path or None,
        ) from None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BadRequest("Request body is empty; expected a JSON object")
    data = loads(raw)
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object")
    return data


async def parse_body(request: Request, model: type[M], limit: int = DEFAULT_LIMIT) -> M:
    """The body validated as ``model`` (a ValidationError is rendered as a 400 at the edge)."""
    return model.model_validate(parse_json_object(await read_body(request, limit)))
