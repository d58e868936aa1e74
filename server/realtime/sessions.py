"""Who is connected to this node: per-user connection cap, per-socket event rate, and the
disconnection of sockets and SSE streams whose key was revoked, whose user was deleted or
whose JWT expired. A `GET /v1/tasks/{id}/stream` response is a connection like a socket:
it counts toward the cap and is ended by the same revocations.

Revocations arrive on a Redis channel (engine/accounts/profile.py announces them), so every node
drops the sockets at once; a periodic re-check against Postgres is the backstop for keys
revoked or users deleted by other means (the CLI, SQL), and for a lost pub/sub message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import socketio
from aiohttp import web
from redis.exceptions import RedisError

from db.api_keys import live_callers
from db.pool import count_as_background
from db.users import User
from engine.accounts.connections import ConnectionCounter
from engine.aio import check_cancelled, spawn_loop
from engine.errors import RateLimited
from server.state import ENGINE, POOL, REDIS, SETTINGS

log = logging.getLogger(__name__)
RECONNECT_DELAY_S = 1.0
SESSION_ENDED = "session_ended"  # the last event of a socket ended for authentication
LISTEN_WAIT_S = 5.0  # how long a start waits for the revocation subscription


@dataclass
class _Session:
    user_id: UUID
    key_id: UUID | None
    expires_at: float | None
    tokens: float
    stamp: float = field(default_factory=time.monotonic)
    # An SSE stream's way to end itself; None for a socket (ended through Socket.IO).
    end: Callable[[], Awaitable[None]] | None = None


class Sessions:
    """Connection bookkeeping of one node; its two loops are owned by `sessions_ctx`."""

    def __init__(self, sio: socketio.AsyncServer, app: web.Application) -> None:
        self.sio = sio
        self.app = app
        self.node = uuid.uuid4().hex
        self.by_sid: dict[str, _Session] = {}
        self.listening = asyncio.Event()  # subscribed to the revocation channel
        self._counter: ConnectionCounter | None = None

    @property
    def counter(self) -> ConnectionCounter:
        if self._counter is None:
            settings = self.app[SETTINGS]
            self._counter = ConnectionCounter(
                self.app[REDIS],
                self.app[ENGINE].keys,
                settings.max_connections_per_user,
                lease_s=max(15.0, settings.auth_recheck_s * 3),
            )
        return self._counter

    async def open(
        self, sid: str, user: User, end: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Admit a new socket (or, with `end`, an SSE stream) of `user`, or RateLimited past
        the per-user connection cap (counted over every node)."""
        settings = self.app[SETTINGS]
        if not await self.counter.admit(user.id, f"{self.node}:{sid}"):
            raise RateLimited(
                f"at most {settings.max_connections_per_user} connections per user",
                details={"retry_after_ms": 1000},
            )
        self.by_sid[sid] = _Session(
            user.id, user.key_id, user.expires_at, settings.max_events_per_second, end=end
        )

    async def close(self, sid: str) -> None:
        session = self.by_sid.pop(sid, None)
        if session is not None:
            await self.counter.release(session.user_id, f"{self.node}:{sid}")

    def allow_event(self, sid: str) -> None:
        """Token bucket per socket: MAX_EVENTS_PER_SECOND, with bursts of as many."""
        session = self.by_sid.get(sid)
        if session is None:
            return
        rate = self.app[SETTINGS].max_events_per_second
        now = time.monotonic()
        session.tokens = min(rate, session.tokens + (now - session.stamp) * rate)
        session.stamp = now
        if session.tokens < 1:
            raise RateLimited(
                f"at most {rate:g} events per second per connection",
                details={"retry_after_ms": int((1 - session.tokens) / rate * 1000) + 1},
            )
        session.tokens -= 1

    async def drop(self, predicate: Any, why: str) -> int:
        """Disconnect every local socket whose session matches `predicate`."""
        sids = [sid for sid, s in self.by_sid.items() if predicate(s)]
        for sid in sids:
            session = self.by_sid.get(sid)
            log.info("disconnecting %s: %s", sid, why)
            if session is not None and session.end is not None:
                await session.end()
            else:
                # Say why first, so a client asks for a fresh token instead of retrying
                # the one just refused (or hanging).
                await self.sio.emit(SESSION_ENDED, {"code": "unauthorized", "message": why}, to=sid)
                await self.sio.disconnect(sid)
            await self.close(sid)
        return len(sids)

    async def on_revoked(self, raw: bytes | str) -> None:
        try:
            message = json.loads(raw)
            user_id = UUID(message["user_id"]) if message.get("user_id") else None
            key_id = UUID(message["key_id"]) if message.get("key_id") else None
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed revocation message")
            return
        await self.drop(
            lambda s: (
                (key_id is not None and s.key_id == key_id)
                or (user_id is not None and s.user_id == user_id)
            ),
            "the API key was revoked or the user deleted",
        )

    async def listen(self) -> None:
        """Follow the revocation channel; reconnect when Redis goes away."""
        channel = self.app[ENGINE].keys.revoked_channel()
        while True:
            check_cancelled()
            try:
                async with self.app[REDIS].pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(channel)
                    self.listening.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self.on_revoked(message["data"])
            except (RedisError, OSError) as exc:
                log.warning("revocation listener lost Redis (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RECONNECT_DELAY_S)

    async def recheck(self) -> None:
        """Every AUTH_RECHECK_S, drop sockets whose token expired or whose key or user is no
        longer live."""
        count_as_background()
        while True:
            check_cancelled()
            await asyncio.sleep(self.app[SETTINGS].auth_recheck_s)
            await self.counter.renew(
                [(s.user_id, f"{self.node}:{sid}") for sid, s in self.by_sid.items()]
            )
            await self.drop(_expired(time.time()), "the token expired")
            if not self.by_sid:
                continue
            sessions = list(self.by_sid.values())
            try:
                users, keys = await live_callers(
                    self.app[POOL],
                    list({s.user_id for s in sessions}),
                    list({s.key_id for s in sessions if s.key_id is not None}),
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                log.warning("auth re-check failed (%s)", type(exc).__name__)
                continue
            await self.drop(
                _not_in(users, keys, sessions), "the API key was revoked or the user deleted"
            )


def _expired(now: float) -> Any:
    return lambda s: s.expires_at is not None and s.expires_at <= now


def _not_in(users: set[UUID], keys: set[UUID], checked: list[_Session]) -> Any:
    """Sessions among `checked` whose user or key is not live. A socket that connected while
    the query ran was not asked about: it is judged at the next re-check, not dropped now."""
    asked = {id(s) for s in checked}
    return lambda s: (
        id(s) in asked
        and (s.user_id not in users or (s.key_id is not None and s.key_id not in keys))
    )


SESSIONS = web.AppKey("sessions", Sessions)


async def sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the revocation listener and the re-check for the app's lifetime."""
    sessions = app[SESSIONS]
    loops = [
        spawn_loop(sessions.listen(), "revocation-listener"),
        spawn_loop(sessions.recheck(), "auth-recheck"),
    ]
    # A node that says it is up hears every revocation from then on (else a key revoked
    # right after the start would wait for the re-check); Redis away: the loop retries.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sessions.listening.wait(), LISTEN_WAIT_S)
    yield
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
