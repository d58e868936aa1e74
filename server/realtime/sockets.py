"""Socket.IO events of docs/protocol.md: parse, call the engine, answer with an ack."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web
from engineio import packet as eio_packet

from db.users import User
from engine.errors import (
    InvalidRequest,
    Unauthorized,
)
from engine.protocol.requests import ExecuteRequest, SubscribeRequest, TaskRef, decode
from engine.protocol.tools import ToolResultRequest
from engine.status import TaskStatus
from server.auth import authenticate, token_from
from server.errors import client_error, error_ack
from server.realtime.runs_feed import user_room
from server.realtime.sessions import SESSIONS, Sessions
from server.realtime.watchers import check_watchers
from server.state import ENGINE, METRICS, POOL, RELAY, SETTINGS

log = logging.getLogger(__name__)

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]


class SocketSubscriber:
    """Relay subscriber that puts a task's events on one socket's Engine.IO queue.

    Not `sio.emit(..., to=sid)`: for every message that makes an asyncio task and waits
    for it, and encodes the packet again for each subscriber. Here a packet is encoded
    once (`_Packets`) and queued directly; a socket that has gone away raises
    ConnectionError, which ends this subscription in the relay.
    """

    __slots__ = ("eio", "eio_sid", "packets")

    def __init__(self, sio: socketio.AsyncServer, sid: str, packets: _Packets) -> None:
        self.eio = sio.eio
        self.eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
        self.packets = packets

    async def send(self, event: str, payload: dict[str, Any]) -> None:
        socket = self.eio.sockets.get(self.eio_sid)
        if socket is None or socket.closed:
            raise ConnectionError("the socket is closed")
        await socket.send(self.packets.encode(event, payload))


class _Packets:
    """The Engine.IO packet of the last event sent, reused while the same payload goes to
    the task's other subscribers (the relay hands each the same object)."""

    __slots__ = ("packet_class", "event", "payload", "packet")

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.packet_class = sio.packet_class
        self.event = ""
        self.payload: object = None
        self.packet: eio_packet.Packet | None = None

    def encode(self, event: str, payload: dict[str, Any]) -> eio_packet.Packet:
        if self.packet is None or payload is not self.payload or event != self.event:
            encoded = self.packet_class(socketio.packet.EVENT, data=[event, payload]).encode()
            self.packet = eio_packet.Packet(eio_packet.MESSAGE, encoded)
            self.event, self.payload = event, payload
        return self.packet


def wants_runs_changed(auth: Any) -> bool:
    """A socket hears `runs_changed` only when it asks at connect (`auth.runs_changed`:
    true): a sidebar wants it, while a script with a hundred sockets on one key would
    otherwise get every run it creates a hundred times."""
    return isinstance(auth, dict) and auth.get("runs_changed") is True


def acked(handler: Handler, on_error: Callable[[str], None] | None = None) -> Handler:
    """Turn our errors into `{ok: false, error}` acks; nothing else escapes a handler."""

    @functools.wraps(handler)
    async def wrapper(sid: str, data: Any = None, *extra: Any) -> dict[str, Any]:
        try:
            if extra:
                raise InvalidRequest(
                    "an event takes one payload object",
                    details={"errors": [{"field": "(payload)", "message": "extra arguments"}]},
                )
            return await handler(sid, data)
        except Exception as raised:
            exc = client_error(raised, f"event {handler.__name__}")
            if on_error is not None:
                on_error(exc.code)
            return error_ack(exc)

    return wrapper


class SocketGateway:
    """Connection state of this node's sockets and the event handlers."""

    def __init__(self, sio: socketio.AsyncServer, app: web.Application) -> None:
        self.sio = sio
        self.app = app
        self.users: dict[str, User] = {}
        self.watching: dict[str, set[str]] = {}
        self.sessions = app[SESSIONS] = Sessions(sio, app)
        self.packets = _Packets(sio)

    def register(self) -> None:
        self.sio.on("connect", self.connect)
        self.sio.on("disconnect", self.disconnect)
        counted = self.app[METRICS].error_code
        self.sio.on("execute", acked(self.execute, counted))
        self.sio.on("subscribe", acked(self.subscribe, counted))
        self.sio.on("unsubscribe", acked(self.unsubscribe, counted))
        self.sio.on("cancel", acked(self.cancel, counted))
        self.sio.on("tool_result", acked(self.tool_result, counted))

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        headers = {"Authorization": environ.get("HTTP_AUTHORIZATION", "")}
        try:
            user = await authenticate(self.app[POOL], token_from(auth, headers), self.app[SETTINGS])
            await self.sessions.open(sid, user)  # per-user connection cap
        except Exception as raised:
            # Ours keep their code; Postgres or Redis away is service_unavailable, as on HTTP.
            # The client's connect_error gets {message, data: {code, message}}.
            exc = client_error(raised, "connect")
            raise socketio.exceptions.ConnectionRefusedError(exc.message, exc.to_dict()) from None
        self.users[sid] = user
        self.watching[sid] = set()
        if wants_runs_changed(auth):  # server/realtime/runs_feed.py delivers to the user's room
            await self.sio.enter_room(sid, user_room(user.id))
        self.app[METRICS].sockets_connected.inc()

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        # A closed socket stops receiving; its tasks go on (disconnect is not cancel).
        for task_id in self.watching.pop(sid, set()):
            self.app[RELAY].unsubscribe(task_id, sid)
        if self.users.pop(sid, None) is not None:
            self.app[METRICS].sockets_connected.dec()
        await self.sessions.close(sid)

    def busy(self, sid: str) -> bool:
        """Whether the socket still waits for the events of a task (a drain keeps it open)."""
        relay = self.app[RELAY]
        return any(relay.delivers_to(task_id, sid) for task_id in self.watching.get(sid, ()))

    def _user(self, sid: str) -> User:
        user = self.users.get(sid)
        if user is None:
            raise Unauthorized("not connected")
        self.sessions.allow_event(sid)  # every event handler starts here
        return user

    def _limit(self) -> int:
        return self.app[SETTINGS].max_payload_bytes

    async def _watch(
        self, sid: str, task_id: str, after_seq: int, fresh: bool = False
    ) -> tuple[str, int]:
        watching = self.watching.get(sid)
        if watching is None:
            raise Unauthorized("not connected")
        check_watchers(self.app[RELAY], self.app[SETTINGS], task_id, sid)
        watching.add(task_id)
        subscriber = SocketSubscriber(self.sio, sid, self.packets)
        result = await self.app[RELAY].subscribe(task_id, sid, subscriber, after_seq, fresh=fresh)
        return result.status, result.last_seq

    async def execute(self, sid: str, data: Any) -> dict[str, Any]:
        user = self._user(sid)
        req = decode(ExecuteRequest, data, max_bytes=self._limit())
        result = await self.app[ENGINE].execute(user, req)
        await self._watch(sid, str(result.task_id), 0, fresh=result.status == TaskStatus.RUNNING)
        return {"ok": True, **result.to_dict()}

    async def subscribe(self, sid: str, data: Any) -> dict[str, Any]:
        user = self._user(sid)
        req = decode(SubscribeRequest, data, max_bytes=self._limit())
        # not_found for tasks of others, before anything is sent
        db_status = await self.app[ENGINE].task_status(user, req.task_id)
        status, last_seq = await self._watch(sid, str(req.task_id), req.after_seq)
        if status == TaskStatus.RUNNING:
            status = db_status
        return {"ok": True, "status": status, "last_seq": last_seq}

    async def unsubscribe(self, sid: str, data: Any) -> dict[str, Any]:
        self._user(sid)
        req = decode(TaskRef, data, max_bytes=self._limit())
        task_id = str(req.task_id)
        self.watching.get(sid, set()).discard(task_id)
        self.app[RELAY].unsubscribe(task_id, sid)
        return {"ok": True}

    async def cancel(self, sid: str, data: Any) -> dict[str, Any]:
        user = self._user(sid)
        req = decode(TaskRef, data, max_bytes=self._limit())
        status = await self.app[ENGINE].cancel(user, req.task_id)
        return {"ok": True, "status": status}

    async def tool_result(self, sid: str, data: Any) -> dict[str, Any]:
        user = self._user(sid)
        req = decode(ToolResultRequest, data, max_bytes=self._limit())
        return {"ok": True, **await self.app[ENGINE].tool_result(user, req)}
