"""HTTP routes of conversations and history (docs/conversations.md): parse, call the engine."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

from aiohttp import web

from db.executions import TaskFilter
from engine.errors import InvalidRequest
from engine.protocol.requests import RunUpdate
from server.http.prompts import page_limit
from server.http.requests import body_as, current_user, path_uuid
from server.state import ENGINE

routes = web.RouteTableDef()


def _bad(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"bad `{field}`: {message}", details={"errors": [{"field": field, "message": message}]}
    )


def time_param(request: web.Request, name: str) -> datetime | None:
    """An ISO 8601 date or date-time query parameter (a date is its midnight UTC, a time
    without an offset is UTC); None when absent."""
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        stamp = datetime.fromisoformat(raw)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)  # OverflowError past year 1 or 9999 in UTC
    except (ValueError, OverflowError):
        raise _bad(name, "not an ISO 8601 date or date-time") from None


def _time_range(request: web.Request) -> tuple[datetime | None, datetime | None]:
    start, end = time_param(request, "from"), time_param(request, "to")
    if start is not None and end is not None and end < start:
        raise _bad("to", "before `from`")
    return start, end


def _uuid_param(request: web.Request, name: str) -> UUID | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise _bad(name, "not a UUID") from None


@routes.get("/v1/runs")
async def list_runs(request: web.Request) -> web.Response:
    user = await current_user(request)
    page = await request.app[ENGINE].conversations.list_runs(
        user,
        archived=request.query.get("archived") or "false",
        text=request.query.get("q") or None,
        limit=page_limit(request),
        cursor=request.query.get("cursor") or None,
    )
    return web.json_response(page)


@routes.patch("/v1/runs/{id}")
async def update_run(request: web.Request) -> web.Response:
    user = await current_user(request)
    run_id = path_uuid(request.match_info["id"], "run")
    change = await body_as(request, RunUpdate)
    return web.json_response(
        await request.app[ENGINE].conversations.update_run(user, run_id, change)
    )


@routes.delete("/v1/runs/{id}")
async def delete_run(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[ENGINE].conversations.delete_run(
        user, path_uuid(request.match_info["id"], "run")
    )
    return web.Response(status=204)


@routes.get("/v1/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    user = await current_user(request)
    start, end = _time_range(request)
    where = TaskFilter(
        run_id=_uuid_param(request, "run_id"),
        prompt_id=_uuid_param(request, "prompt_id"),
        status=request.query.get("status") or None,
        start=start,
        end=end,
    )
    page = await request.app[ENGINE].conversations.list_tasks(
        user, where, limit=page_limit(request), cursor=request.query.get("cursor") or None
    )
    return web.json_response(page)


@routes.get("/v1/prompts/{id}/stats")
async def prompt_stats(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    start, end = _time_range(request)
    stats = await request.app[ENGINE].conversations.prompt_stats(user, prompt_id, start, end)
    return web.json_response(stats)
