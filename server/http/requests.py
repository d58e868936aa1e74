"""What every HTTP route needs from a request: the caller, path ids and the JSON body."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from db.users import User
from engine.errors import InvalidRequest, NotFound, PayloadTooLarge, Unauthorized
from engine.protocol.requests import decode
from server.auth import authenticate, token_from
from server.http.throttle import limit_address, limit_user
from server.state import POOL, SETTINGS


async def current_user(request: web.Request) -> User:
    """The caller, from `Authorization: Bearer <key or JWT>` (401 otherwise), counted
    against the per-user HTTP rate (a failed authentication against the client address)."""
    try:
        user = await authenticate(
            request.app[POOL], token_from(None, request.headers), request.app[SETTINGS]
        )
    except Unauthorized:
        await limit_address(request)
        raise
    await limit_user(request, user)
    return user


def path_uuid(value: str, field: str = "id") -> UUID:
    """An id from the path; one that is not a UUID is simply not found."""
    try:
        return UUID(value)
    except ValueError:
        raise NotFound(f"{field} not found") from None


def body_too_large(request: web.Request) -> PayloadTooLarge:
    """A body above MAX_PAYLOAD_BYTES (aiohttp's `client_max_size`), refused while it was read:
    the same error, with the same `details`, as a payload found too large once decoded."""
    limit = request.app[SETTINGS].max_payload_bytes
    return PayloadTooLarge(
        f"request body is larger than {limit} bytes",
        details={"limit": "payload_bytes", "max": limit},
    )


async def json_body(request: web.Request) -> Any:
    """The request body as JSON, or `invalid_request`."""
    try:
        return await request.json()
    # ValueError: besides malformed JSON and bad UTF-8 (both ValueErrors), an integer literal
    # of more than 4,300 digits, which Python refuses to convert
    except (ValueError, RecursionError):
        raise InvalidRequest(
            "body must be JSON",
            details={"errors": [{"field": "(body)", "message": "invalid JSON"}]},
        ) from None


M = TypeVar("M", bound=BaseModel)


async def body_as(request: web.Request, model: type[M]) -> M:
    """The JSON body validated as `model`, within `MAX_PAYLOAD_BYTES`, or our stable error."""
    return decode(
        model, await json_body(request), max_bytes=request.app[SETTINGS].max_payload_bytes
    )
