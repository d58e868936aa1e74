"""Delivery of `runs_changed` (engine/tasks/runs_feed.py) to the run owner's sockets on this
node: every socket joins its user's room at connect, and one pub/sub listener per node emits
each announced change to that room."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from aiohttp import web
from redis.exceptions import RedisError

from engine.aio import spawn_loop, stop
from server.state import ENGINE, REDIS, SIO

log = logging.getLogger(__name__)
RECONNECT_DELAY_S = 1.0


def user_room(user_id: UUID | str) -> str:
    return f"user:{user_id}"


def event_of(raw: bytes | str) -> tuple[str, dict[str, Any]] | None:
    """(room, `runs_changed` payload) of an announced change; None for a malformed one."""
    try:
        message = json.loads(raw)
        room = user_room(UUID(message["user_id"]))
        payload = {"run_id": str(UUID(message["run_id"])), "change": message["change"]}
        payload["run"] = message.get("run")
    except (ValueError, KeyError, TypeError):
        return None
    return room, payload


async def listen(app: web.Application) -> None:
    """Follow the channel and emit each change; reconnect when Redis goes away."""
    sio = app[SIO]
    channel = app[ENGINE].keys.runs_changed_channel()
    while True:
        try:
            async with app[REDIS].pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    event = event_of(message["data"])
                    if event is None:
                        log.warning("ignoring a malformed runs_changed message")
                        continue
                    await sio.emit("runs_changed", event[1], room=event[0])
        except (RedisError, OSError) as exc:
            log.warning("runs_changed listener lost Redis (%s); retrying", type(exc).__name__)
            await asyncio.sleep(RECONNECT_DELAY_S)


async def runs_feed_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the listener for the app's lifetime (after engine_ctx: it stops first)."""
    loop = spawn_loop(listen(app), "runs-changed-listener")
    yield
    await stop([loop])
