"""What every HTTP route needs from a request: the caller, path ids and the JSON body."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from aiohttp import web

from db.users import User
from engine.errors import InvalidRequest, NotFound
from server.auth import authenticate, token_from
from server.state import POOL, SETTINGS


async def current_user(request: web.Request) -> User:
    """The caller, from `Authorization: Bearer <key or JWT>` (401 otherwise)."""
    return await authenticate(
        request.app[POOL], token_from(None, request.headers), request.app[SETTINGS]
    )


def path_uuid(value: str, field: str = "id") -> UUID:
    """An id from the path; one that is not a UUID is simply not found."""
    try:
        return UUID(value)
    except ValueError:
        raise NotFound(f"{field} not found") from None


async def json_body(request: web.Request) -> Any:
    """The request body as JSON, or `invalid_request`."""
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InvalidRequest(
            "body must be JSON",
            details={"errors": [{"field": "(body)", "message": "invalid JSON"}]},
        ) from None
