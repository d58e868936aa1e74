"""HTTP routes of the caller's account: /v1/me, /v1/keys, /v1/usage (docs/protocol.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from engine.accounts.profile import Accounts
from engine.errors import InvalidRequest
from engine.protocol.requests import NewKeyRequest
from server.http.requests import body_as, current_user, path_uuid
from server.state import ENGINE, POOL, REDIS, SETTINGS

routes = web.RouteTableDef()
DEFAULT_PAGE, MAX_PAGE = 50, 200


def _accounts(request: web.Request) -> Accounts:
    engine = request.app[ENGINE]
    return Accounts(
        request.app[SETTINGS],
        request.app[POOL],
        request.app[REDIS],
        engine.keys,
        engine.quotas,
    )


def _bad(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"bad `{field}`: {message}", details={"errors": [{"field": field, "message": message}]}
    )


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, "not an integer") from None
    if not low <= value <= high:
        raise _bad(name, f"must be between {low} and {high}")
    return value


def _date_param(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _bad(name, "not a date (YYYY-MM-DD)") from None


@routes.get("/v1/me")
async def get_me(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response(await _accounts(request).me(user))


@routes.post("/v1/keys")
async def create_key(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await body_as(request, NewKeyRequest)
    return web.json_response(await _accounts(request).create_key(user, body.name), status=201)


@routes.get("/v1/keys")
async def list_keys(request: web.Request) -> web.Response:
    user = await current_user(request)
    limit = _int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = _int_param(request, "cursor", 0, 0, 2**31 - 1)
    return web.json_response(await _accounts(request).list_keys(user, limit, cursor))


@routes.delete("/v1/keys/{id}")
async def revoke_key(request: web.Request) -> web.Response:
    user = await current_user(request)
    await _accounts(request).revoke_key(user, path_uuid(request.match_info["id"], "key"))
    return web.Response(status=204)


@routes.get("/v1/usage")
async def get_usage(request: web.Request) -> web.Response:
    user = await current_user(request)
    today = datetime.now(UTC).date()
    last = _date_param(request, "to", today)
    first = _date_param(request, "from", last - timedelta(days=30))
    return web.json_response({"items": await _accounts(request).usage(user, first, last)})
