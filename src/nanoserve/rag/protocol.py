"""Wire models of ``/v1/rag`` (pydantic, no heavy imports)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nanoserve.errors import BadRequest
from nanoserve.rag.documents import Format
from nanoserve.rag.intent import Strategy


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentIn(_Request):
    """A document sent as raw text (JSON body); files are uploaded as multipart instead."""

    name: str = Field(min_length=1, max_length=512, description="unique in the collection")
    text: str = Field(min_length=1)
    format: Format | None = Field(default=None, description="text, markdown or html; default from name")
    source: str | None = Field(default=None, max_length=2048)
    title: str | None = Field(default=None, max_length=512)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain some text")
        return value


class QueryIn(_Request):
    collection: str = Field(default="default", min_length=1, max_length=64)
    query: str = Field(min_length=1, max_length=4000)
    top_k: int | None = Field(default=None, ge=1, le=50)
    strategy: Strategy | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class SearchIn(QueryIn):
    top_k: int | None = Field(default=10, ge=1, le=100)


class FeedbackIn(_Request):
    trace_id: str = Field(min_length=1, max_length=64)
    rating: float = Field(ge=-1.0, le=1.0, description="-1 (bad) .. 1 (good)")


def parse(model: type[_Request], data: Any) -> Any:
    """Validate a request body; the first problem becomes a 400 naming the field."""
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        if err["type"] == "missing":
            raise BadRequest(f"'{param}' is a required property", param=param) from None
        if err["type"] == "extra_forbidden":
            raise BadRequest(f"unknown field '{param}'", param=param) from None
        raise BadRequest(f"invalid value for '{param}': {err['msg']}", param=param) from None
