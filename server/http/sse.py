"""`GET /v1/tasks/{id}/stream`: a task's records as Server-Sent Events, resumable with
`Last-Event-ID` or `?after_seq=`.

A stream always ends: with `task_done`, with an `error` event (revoked credentials; Redis
away for longer than a subscribe waits, retryable), or when the client leaves. Where the
live feed cannot bring the end (Redis away or lost it), the task's end is read from
Postgres: a stream quiet for `SSE_KEEPALIVE_S` whose task has ended there gets that
`task_done` one quiet period later, if the relay has not delivered it by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from engine.errors import InvalidRequest, PromptrelayError, ServiceUnavailable, Unauthorized
from engine.stream.relay import Relay
from server.http.cors import prepare_cors
from server.http.requests import current_user, path_uuid
from server.realtime.sessions import SESSIONS
from server.realtime.watchers import check_watchers
from server.state import ENGINE, RELAY, SETTINGS

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

# How long a stream waits for its history and live feed before it answers from Postgres
# (or with a retryable error): a little more than the relay waits for Redis itself.
SUBSCRIBE_BOUND_S = 15.0
_DATABASE_DOWN = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class SseSubscriber:
    """Relay subscriber that writes Server-Sent Events to one response."""

    def __init__(self, response: web.StreamResponse, keepalive_s: float) -> None:
        self.response = response
        self.finished = asyncio.Event()
        self.keepalive_s = keepalive_s
        self.last_write = asyncio.get_running_loop().time()

    async def revoke(self) -> None:
        """The caller's key was revoked, its user deleted or its JWT expired: say so, end."""
        await self.end_with(Unauthorized("the credentials of this stream are no longer valid"))

    async def end_with(self, error: PromptrelayError) -> None:
        """Write `error` as the stream's last event."""
        if self.finished.is_set():
            return
        self.finished.set()
        with contextlib.suppress(ConnectionError):
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

    async def wait(
        self, request: web.Request, relay: Relay, task_id: UUID, poll_s: float = 1.0
    ) -> None:
        """Until task_done was sent or the client went away (aiohttp does not tell); a
        `: keep-alive` comment whenever nothing was written for `keepalive_s`, and then a
        look at Postgres: a task ended there whose end the feed has not brought one quiet
        period later gets its `task_done` from there."""
        loop = asyncio.get_running_loop()
        ended: dict[str, Any] | None = None
        while not self.finished.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            quiet = self.last_write + self.keepalive_s - loop.time()
            if quiet <= 0:
                if ended is not None:
                    log.warning("task %s: its end came from Postgres, not the feed", task_id)
                    await self.send("task_done", ended)
                    return
                self.last_write = loop.time()
                await self.response.write(b": keep-alive\n\n")
                ended = await _final(relay, task_id)
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
    check_watchers(request.app[RELAY], request.app[SETTINGS], str(task_id), key)
    sessions = request.app[SESSIONS]
    await sessions.open(key, user, subscriber.revoke)  # the per-user connection cap
    relay = request.app[RELAY]
    try:
        await response.prepare(request)
        try:
            await asyncio.wait_for(
                relay.subscribe(str(task_id), key, subscriber, after_seq), SUBSCRIBE_BOUND_S
            )
        except (TimeoutError, ServiceUnavailable, RedisError):
            await _answer_without_feed(subscriber, relay, task_id)
            return response
        await subscriber.wait(request, relay, task_id)
        if subscriber.finished.is_set():
            await response.write_eof()
    except ConnectionError:  # the client closed the stream: an ordinary event
        log.debug("client closed the stream of task %s", task_id)
    finally:
        relay.unsubscribe(str(task_id), key)
        await sessions.close(key)
    return response


async def _final(relay: Relay, task_id: UUID) -> dict[str, Any] | None:
    """The task's `task_done` as Postgres has it (None: still running, or Postgres away)."""
    try:
        return await relay.load_final(str(task_id))
    except _DATABASE_DOWN as exc:
        log.info("task %s: database unavailable (%s)", task_id, type(exc).__name__)
        return None


async def _answer_without_feed(subscriber: SseSubscriber, relay: Relay, task_id: UUID) -> None:
    """The feed did not come up in time (Redis away): the task's end from Postgres if it has
    ended, else a retryable `service_unavailable` error event; either way the stream ends."""
    final = await _final(relay, task_id)
    if final is not None:
        await subscriber.send("task_done", final)
    else:
        error = ServiceUnavailable("the stream is unavailable for now; reconnect to resume")
        await subscriber.end_with(error)
    with contextlib.suppress(ConnectionError):
        await subscriber.response.write_eof()
