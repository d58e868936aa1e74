"""Engine.IO sessions that have not completed a Socket.IO CONNECT: capped and short-lived.

An Engine.IO handshake costs the server a session (queues, timers, the request's environ)
before any token is seen. A session is *pending* from its handshake until its Socket.IO
CONNECT is accepted; pending sessions are capped per client address
(`MAX_PENDING_HANDSHAKES_PER_ADDRESS`) and in total (`MAX_PENDING_HANDSHAKES`), and one still
pending after `HANDSHAKE_DEADLINE_S` is closed. A handshake past its address's cap is
answered `429 rate_limited` with `Retry-After`, before Engine.IO creates anything. At the
node's total, a new handshake is admitted and a pending one is closed instead: the oldest
of the address that holds the most. A flood from many addresses then only shortens how
long its own anonymous sessions may wait, and a client that sends its CONNECT (with its
token) right after its handshake, as the official clients do, is still served: its address
holds one pending session, the flood's hold many.

The client address is the TCP peer (aiohttp's `request.remote`); behind a proxy every
client shares the proxy's address, so raise the per-address cap there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import socketio
from aiohttp import web

from engine.settings import Settings
from server.realtime.polling import use_whole_bodies
from server.realtime.websocket import use_plain_websockets
from server.state import SETTINGS

log = logging.getLogger(__name__)
SOCKET_PATH = "/socket.io/"
# The header of a Socket.IO packet: type, binary attachments, namespace, ack id.
MALFORMED = re.compile(
    r"(?P<type>\d)(?:\d{1,6}-)?(?:(?P<ns>/[^,]{0,200}),)?(?P<id>\d{1,15})?(?!\d)"
)
BINARY_TYPES = (str(socketio.packet.BINARY_EVENT), str(socketio.packet.BINARY_ACK))
MALFORMED_PACKET = {"code": "invalid_request", "message": "malformed packet"}
# Handlers python-socketio calls itself; a client naming them is sending an unknown event.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error", "message"})
BINARY_REFUSED = {
    "code": "invalid_request",
    "message": "binary data is not accepted",
    "details": {"errors": [{"field": "(payload)", "message": "binary data is not accepted"}]},
}


class HandshakeGuard:
    """Pending Engine.IO sessions of this node, by client address."""

    def __init__(self, per_address: int, total: int, deadline_s: float) -> None:
        self.per_address = per_address
        self.total = total
        self.deadline_s = deadline_s
        self._pending: dict[str, tuple[str, float]] = {}  # eio sid -> (address, deadline)
        # address -> its pending sessions, oldest first (dicts keep insertion order)
        self._by_address: dict[str, dict[str, None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> HandshakeGuard:
        return cls(
            settings.max_pending_handshakes_per_address,
            settings.max_pending_handshakes,
            settings.handshake_deadline_s,
        )

    def __len__(self) -> int:
        return len(self._pending)

    def full(self, address: str) -> bool:
        """The address has its cap of pending sessions (the node's total never refuses)."""
        return len(self._by_address.get(address, ())) >= self.per_address

    def admit(self, eio_sid: str, address: str) -> tuple[bool, list[str]]:
        """(admitted, the pending sessions to close to make room: the oldest, when the
        node's total is reached)."""
        if self.full(address):
            return False, []
        evicted = []
        while self._pending and len(self._pending) >= self.total:
            crowded = max(self._by_address.values(), key=len)
            oldest = next(iter(crowded))
            self.done(oldest)
            evicted.append(oldest)
        self._pending[eio_sid] = (address, time.monotonic() + self.deadline_s)
        self._by_address.setdefault(address, {})[eio_sid] = None
        return True, evicted

    def done(self, eio_sid: str) -> None:
        """The session completed its CONNECT or went away."""
        entry = self._pending.pop(eio_sid, None)
        if entry is not None:
            sessions = self._by_address[entry[0]]
            del sessions[eio_sid]
            if not sessions:
                del self._by_address[entry[0]]

    def expired(self, now: float) -> list[str]:
        return [sid for sid, (_, deadline) in self._pending.items() if deadline <= now]


def client_address(environ: dict[str, Any]) -> str:
    request = environ.get("aiohttp.request")
    remote = getattr(request, "remote", None)
    return str(remote or "unknown")


class QuietEngineLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Engine.IO's logger: warnings and errors only (as with `engineio_logger=False`), and
    what it logs with a traceback (a frame it cannot parse, a client's garbage) becomes one
    warning line naming the exception."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("engineio.server"), {})

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        # Below WARNING Engine.IO logs every packet, tokens included: never.
        return level >= logging.WARNING and self.logger.isEnabledFor(level)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kind = type(sys.exc_info()[1]).__name__
        self.warning("%s (%s)", str(msg) % args if args else msg, kind)


class GuardedServer(socketio.AsyncServer):  # type: ignore[misc]
    """A Socket.IO server whose Engine.IO sessions pass the guard until they CONNECT.

    Overrides python-socketio's two Engine.IO hooks and its CONNECT handling, the points
    where a session starts, ends and completes.
    """

    def __init__(self, guard: HandshakeGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard = guard
        use_plain_websockets(self.eio)  # no permessage-deflate (server/realtime/websocket.py)
        use_whole_bodies(self.eio)  # a large polling POST read whole (server/realtime/polling.py)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        admitted, evicted = self.guard.admit(eio_sid, client_address(environ))
        if not admitted:
            return False  # Engine.IO answers 401 and drops the session
        if evicted:
            await self._close_pending(evicted)
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self.guard.done(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)

    async def _handle_connect(self, eio_sid: str, namespace: Any, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        if self.manager.sid_from_eio_sid(eio_sid, namespace or "/") is not None:
            self.guard.done(eio_sid)  # accepted: a counted connection from now on

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """A packet that cannot be decoded (bad JSON, an integer of more than 4,300 digits,
        an unknown type) gets an `invalid_request` error ack when it carries an ack id, and
        one warning line, never a traceback.

        No event takes binary data: a binary packet is refused (`invalid_request`, as any
        payload that is not an object) before python-socketio would keep it and every
        attachment frame it announces; those frames are dropped as they arrive, so nothing
        of them stays in memory."""
        if not isinstance(data, str):
            return  # an attachment frame (or any binary frame): nothing waits for it
        if data[:1] in BINARY_TYPES:
            log.warning("binary Socket.IO packet refused")
            await self._refuse_packet(eio_sid, data, BINARY_REFUSED)
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            log.warning("malformed Socket.IO packet (%s)", type(exc).__name__)
            await self._refuse_packet(eio_sid, data)

    async def _refuse_packet(
        self, eio_sid: str, data: str, error: dict[str, Any] = MALFORMED_PACKET
    ) -> None:
        header = MALFORMED.match(data)
        if header is None or header["id"] is None or header["type"] not in ("2", "5"):
            return  # no ack id: nothing to answer
        await self._error_ack(eio_sid, header["ns"], int(header["id"]), error)

    async def _error_ack(
        self, eio_sid: str, namespace: str | None, ack_id: int, error: dict[str, Any]
    ) -> None:
        namespace = namespace or "/"
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is None:
            return  # not connected: nobody to answer
        ack = self.packet_class(
            socketio.packet.ACK,
            namespace=namespace,
            data=[{"ok": False, "error": error}],
            id=ack_id,
        )
        await self._send_packet(eio_sid, ack)

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, ack_id: int | None, data: Any
    ) -> None:
        """An event whose name is not one of ours (not a string, `connect`, or unknown) is
        acked `invalid_request` naming the events there are, and never reaches a handler."""
        events = self.handlers.get(namespace or "/", {})
        name = data[0] if isinstance(data, list) and data else None
        if isinstance(name, str) and name in events and name not in RESERVED_EVENTS:
            await super()._handle_event(eio_sid, namespace, ack_id, data)
            return
        log.warning("unknown Socket.IO event refused")
        if ack_id is not None:
            known = ", ".join(sorted(set(events) - RESERVED_EVENTS))
            message = f"unknown event; the events are {known}"
            error = {
                "code": "invalid_request",
                "message": message,
                "details": {"errors": [{"field": "(event)", "message": message}]},
            }
            await self._error_ack(eio_sid, namespace, ack_id, error)

    async def close_expired(self) -> int:
        expired = self.guard.expired(time.monotonic())
        for eio_sid in expired:
            self.guard.done(eio_sid)
        await self._close_pending(expired)
        return len(expired)

    async def _close_pending(self, eio_sids: list[str]) -> None:
        """Close Engine.IO sessions that never completed a CONNECT."""
        for eio_sid in eio_sids:
            session = self.eio.sockets.pop(eio_sid, None)
            if session is not None:
                # Not eio.disconnect(): it waits until the client reads the CLOSE packet,
                # which a client that never polls again never does.
                await session.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)


GUARD = web.AppKey("handshake_guard", GuardedServer)


@web.middleware
async def handshake_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuse a new Engine.IO handshake past a cap before Engine.IO allocates a session."""
    if request.path == SOCKET_PATH and "sid" not in request.query:
        sio = request.app[GUARD]
        if sio.guard.full(str(request.remote or "unknown")):
            retry_s = max(1, int(request.app[SETTINGS].handshake_deadline_s))
            return web.json_response(
                {
                    "error": {
                        "code": "rate_limited",
                        "message": "too many connections that have not authenticated",
                        "details": {"retry_after_ms": retry_s * 1000},
                    }
                },
                status=429,
                headers={"Retry-After": str(retry_s)},
            )
    response: web.StreamResponse = await handler(request)
    return response


async def handshake_deadline_ctx(app: web.Application) -> AsyncIterator[None]:
    """Close pending sessions past their deadline, for the app's lifetime."""
    sio = app[GUARD]

    async def sweep() -> None:
        interval = min(1.0, sio.guard.deadline_s / 2)
        while True:
            await asyncio.sleep(interval)
            closed = await sio.close_expired()
            if closed:
                log.info("closed %d connection(s) that never authenticated", closed)

    loop = asyncio.create_task(sweep(), name="handshake-deadline")
    yield
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
