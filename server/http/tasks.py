"""HTTP routes of docs/protocol.md on the same port as Socket.IO."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from engine.errors import (
    MethodNotAllowed,
    NotFound,
    PromptrelayError,
)
from engine.protocol.requests import ExecuteRequest
from engine.protocol.tools import ToolResultBody, ToolResultRequest
from server.errors import client_error, error_response
from server.http.requests import body_as, body_too_large, current_user, path_uuid
from server.state import ENGINE, METRICS, POOL, REDIS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure becomes `{error: {code, message}}` through server/errors.py."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPRequestEntityTooLarge:
        exc: PromptrelayError = body_too_large(request)
    except web.HTTPNotFound:  # no route matched: the same JSON error as an unknown id
        exc = NotFound("not found")
    except web.HTTPMethodNotAllowed as e:
        allowed = sorted(e.allowed_methods)
        exc = MethodNotAllowed(
            f"{request.method} is not a method of this path", details={"allowed": allowed}
        )
    except web.HTTPException:
        raise
    except Exception as raised:
        exc = client_error(raised, f"HTTP {request.method} {request.path}")
    request.app[METRICS].error_code(exc.code)
    return error_response(exc)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, bool] = {}
    try:
        await asyncio.wait_for(request.app[POOL].fetchval("SELECT 1"), 2)
        checks["postgres"] = True
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
        checks["postgres"] = False
    try:
        await asyncio.wait_for(request.app[REDIS].ping(), 2)
        checks["redis"] = True
    except (RedisError, OSError, TimeoutError):
        checks["redis"] = False
    ok = all(checks.values())
    return web.json_response({"ok": ok, **checks}, status=200 if ok else 503)


@routes.post("/v1/executions")
async def create_execution(request: web.Request) -> web.Response:
    user = await current_user(request)
    req = await body_as(request, ExecuteRequest)
    result = await request.app[ENGINE].execute(user, req)
    return web.json_response(result.to_dict(), status=202)


@routes.get("/v1/tasks/{id}")
async def get_task(request: web.Request) -> web.Response:
    user = await current_user(request)
    view = await request.app[ENGINE].task_view(user, path_uuid(request.match_info["id"], "task"))
    return web.json_response(view)


@routes.get("/v1/tasks/{id}/events")
async def get_task_events(request: web.Request) -> web.Response:
    user = await current_user(request)
    items = await request.app[ENGINE].task_events(user, path_uuid(request.match_info["id"], "task"))
    return web.json_response({"items": items})


@routes.post("/v1/tasks/{id}/cancel")
async def cancel_task(request: web.Request) -> web.Response:
    user = await current_user(request)
    status = await request.app[ENGINE].cancel(user, path_uuid(request.match_info["id"], "task"))
    return web.json_response({"status": status})


@routes.post("/v1/tasks/{id}/tool_results")
async def add_tool_result(request: web.Request) -> web.Response:
    """The output of one tool call the task asked for (docs/tools.md)."""
    user = await current_user(request)
    task_id = path_uuid(request.match_info["id"], "task")
    body = await body_as(request, ToolResultBody)
    req = ToolResultRequest(task_id=task_id, call_id=body.call_id, output=body.output)
    return web.json_response(await request.app[ENGINE].tool_result(user, req))


@routes.get("/v1/runs/{id}")
async def get_run(request: web.Request) -> web.Response:
    user = await current_user(request)
    view = await request.app[ENGINE].run_view(user, path_uuid(request.match_info["id"], "run"))
    return web.json_response(view)
