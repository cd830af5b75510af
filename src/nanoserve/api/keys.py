"""The keys' admin API (scope ``admin``; the CLI's ``nanoserve keys`` edits the same store).

GET    /admin/keys           live keys (name, prefix, scopes, models, limits; never a secret)
POST   /admin/keys           {name, scopes, models?, rpm?, tpm?, max_concurrent?} → the secret, once
DELETE /admin/keys/{name}    revoke
GET    /admin/keys/usage     requests and tokens per key and model since the gateway started
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from nanoserve.auth.middleware import Gate
from nanoserve.auth.store import Limits


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    scopes: list[str] = Field(min_length=1)
    models: list[str] = Field(default_factory=list, description="allowed models; empty: all")
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def create_keys_router() -> APIRouter:
    router = APIRouter(prefix="/admin/keys", tags=["admin"])

    @router.get("")
    async def list_keys(request: Request) -> dict[str, Any]:
        return {"object": "list", "data": [k.as_dict() for k in _gate(request).store.list()]}

    @router.post("", status_code=201)
    async def create_key(request: Request, body: KeyIn) -> dict[str, Any]:
        limits = Limits(body.rpm, body.tpm, body.max_concurrent)
        secret, key = _gate(request).store.create(body.name, body.scopes, models=body.models, limits=limits)
        return {**key.as_dict(), "key": secret}

    @router.get("/usage")
    async def usage(request: Request) -> dict[str, Any]:
        return _gate(request).usage.snapshot()

    @router.delete("/{name}")
    async def revoke_key(request: Request, name: str) -> dict[str, Any]:
        return {**_gate(request).store.revoke(name).as_dict(), "revoked": True}

    return router
