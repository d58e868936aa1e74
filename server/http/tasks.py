"""HTTP routes of docs/protocol.md on the same port as Socket.IO."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from engine.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PromptrelayError,
    Unauthorized,
)
from engine.protocol.requests import ExecuteRequest
from engine.protocol.tools import ToolResultBody, ToolResultRequest
from server.errors import client_error, error_response
from server.http.cors import prepare_cors
from server.http.requests import body_as, current_user, path_uuid
from server.realtime.sessions import SESSIONS
from server.state import ENGINE, METRICS, POOL, REDIS, RELAY, SETTINGS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure becomes `{error: {code, message}}` through server/errors.py."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPRequestEntityTooLarge:
        exc: PromptrelayError = PayloadTooLarge("request body too large")
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


class SseSubscriber:
    """Relay subscriber that writes Server-Sent Events to one response."""

    def __init__(self, response: web.StreamResponse, keepalive_s: float) -> None:
        self.response = response
        self.finished = asyncio.Event()
        self.keepalive_s = keepalive_s
        self.last_write = asyncio.get_running_loop().time()

    async def revoke(self) -> None:
        """The caller's key was revoked, its user deleted or its JWT expired: say so, end."""
        if self.finished.is_set():
            return
        self.finished.set()
        with contextlib.suppress(ConnectionError):
            error = Unauthorized("the credentials of this stream are no longer valid")
            await self.response.write(
                f"event: error\ndata: {json.dumps(error.to_dict())}\n\n".encode()
            )

    async def send(self, event: str, payload: dict[str, Any]) -> None:
        if self.finished.is_set():
            # Ended (revoked, or task_done sent): nothing may follow the last event, even a
            # chunk the relay was already handing over when the stream was cut.
            return
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        # The id is what a browser sends back as Last-Event-ID when it reconnects.
        seq = payload.get("seq", payload.get("last_seq"))
        head = f"id: {seq}\n" if isinstance(seq, int) else ""
        try:
            self.last_write = asyncio.get_running_loop().time()
            await self.response.write(f"{head}event: {event}\ndata: {data}\n\n".encode())
        except ConnectionError:
            self.finished.set()  # the client left; the relay drops this subscriber
            raise
        if event == "task_done":
            self.finished.set()

    async def wait(self, request: web.Request, poll_s: float = 1.0) -> None:
        """Until task_done was sent or the client went away (aiohttp does not tell); a
        `: keep-alive` comment whenever nothing was written for `keepalive_s`."""
        loop = asyncio.get_running_loop()
        while not self.finished.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            quiet = self.last_write + self.keepalive_s - loop.time()
            if quiet <= 0:
                self.last_write = loop.time()
                await self.response.write(b": keep-alive\n\n")
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.finished.wait(), min(poll_s, quiet))


def _resume_point(request: web.Request) -> int:
    """Where a stream starts: after the browser's `Last-Event-ID` (a reconnecting
    EventSource sends the last id it saw), else after `?after_seq=` (default 0)."""
    for field, raw in (
        ("Last-Event-ID", request.headers.get("Last-Event-ID")),
        ("after_seq", request.query.get("after_seq")),
    ):
        if raw is None:
            continue
        try:
            value = int(raw)
            if value < 0:
                raise ValueError
        except ValueError:
            raise InvalidRequest(
                f"{field} must be a non-negative integer",
                details={"errors": [{"field": field, "message": "not a non-negative integer"}]},
            ) from None
        return value
    return 0


@routes.get("/v1/tasks/{id}/stream")
async def stream_task(request: web.Request) -> web.StreamResponse:
    user = await current_user(request)
    task_id = path_uuid(request.match_info["id"], "task")
    after_seq = _resume_point(request)
    await request.app[ENGINE].task_status(user, task_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    prepare_cors(request, response)
    subscriber = SseSubscriber(response, request.app[SETTINGS].sse_keepalive_s)
    key = f"sse:{uuid.uuid4()}"
    sessions = request.app[SESSIONS]
    await sessions.open(key, user, subscriber.revoke)  # the per-user connection cap
    relay = request.app[RELAY]
    try:
        await response.prepare(request)
        await relay.subscribe(str(task_id), key, subscriber, after_seq)
        await subscriber.wait(request)
        if subscriber.finished.is_set():
            await response.write_eof()
    except ConnectionError:  # the client closed the stream: an ordinary event
        log.debug("client closed the stream of task %s", task_id)
    finally:
        relay.unsubscribe(str(task_id), key)
        await sessions.close(key)
    return response
