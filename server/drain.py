"""What SIGTERM does to a node: tell its sockets, stop taking jobs, let tasks end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import socketio
from aiohttp import web

from server.state import NODE, SETTINGS

log = logging.getLogger(__name__)

DRAINING_EVENT = "server_draining"

ShutdownHandler = Callable[[web.Application], Awaitable[None]]


def drain_on_shutdown(sio: socketio.AsyncServer | None) -> ShutdownHandler:
    """On SIGTERM (after the node stopped listening): tell this node's sockets to reconnect
    elsewhere, stop taking jobs, and give running tasks the grace period to end."""

    async def drain(app: web.Application) -> None:
        settings = app[SETTINGS]
        if sio is not None:
            try:
                await sio.emit(DRAINING_EVENT, {"reconnect": True})
            except (ConnectionError, OSError) as exc:
                log.warning(
                    "could not tell every socket about the shutdown (%s)", type(exc).__name__
                )
            # Let the event leave before connections close (a client may also just reconnect).
            await asyncio.sleep(min(1.0, settings.shutdown_grace_s))
        node = app.get(NODE)
        if node is not None:
            await node.drain(settings.shutdown_grace_s)

    return drain
