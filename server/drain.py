"""What SIGTERM does to a node: tell its sockets, stop taking jobs, let tasks end.

A second signal (server/process/signals.py) cuts the grace short. Either way, the tasks still
running when the grace ends are ended here, `failed` with their partial text, while the
sockets and SSE streams are still open, so that their subscribers get `task_done`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import socketio
from aiohttp import web

from server.process.signals import SHUTDOWN_SIGNALS
from server.state import ENGINE, NODE, SETTINGS

log = logging.getLogger(__name__)

DRAINING_EVENT = "server_draining"

ShutdownHandler = Callable[[web.Application], Awaitable[None]]


def drain_on_shutdown(sio: socketio.AsyncServer | None) -> ShutdownHandler:
    """On SIGTERM (after the node stopped listening): tell this node's sockets to reconnect
    elsewhere, stop taking jobs, give running tasks the grace period, then end the rest."""

    async def drain(app: web.Application) -> None:
        settings = app[SETTINGS]
        hurry = asyncio.Event()
        signals = app.get(SHUTDOWN_SIGNALS)
        if signals is not None:
            signals.on_hurry(hurry.set)
            signals.on_hurry(app[ENGINE].deps.publisher.abandon)  # Redis may be away
        if sio is not None:
            try:
                await sio.emit(DRAINING_EVENT, {"reconnect": True})
            except (ConnectionError, OSError) as exc:
                log.warning(
                    "could not tell every socket about the shutdown (%s)", type(exc).__name__
                )
            # Let the event leave before connections close (a client may also just reconnect).
            await _unless(hurry, asyncio.sleep(min(1.0, settings.shutdown_grace_s)))
        node = app.get(NODE)
        if node is not None:
            await _unless(hurry, node.drain(settings.shutdown_grace_s))
        supervisor = app[ENGINE].supervisor
        if len(supervisor):
            log.warning("ending %d running task(s) as failed", len(supervisor))
            await supervisor.close()
        if sio is not None:
            await close_sockets(sio)

    return drain


async def close_sockets(sio: socketio.AsyncServer, timeout_s: float = 1.0) -> None:
    """Close every socket of this node, now that its tasks have ended and their `task_done`
    went out. Engine.IO would wait for each client to close its transport, and an open one
    would hold the shutdown until its heartbeat fails (some 20 s); so each socket gets the
    CLOSE packet (within `timeout_s`, for a client that stopped reading), then its transport
    is ended from this side: a None on its queue ends Engine.IO's writer, which closes the
    websocket or answers the pending poll."""
    sockets = list(sio.eio.sockets.values())
    if not sockets:
        return
    closing = [asyncio.create_task(socket.close(), name="close-socket") for socket in sockets]
    _, late = await asyncio.wait(closing, timeout=timeout_s)
    for task in late:
        task.cancel()
    await asyncio.gather(*closing, return_exceptions=True)
    for socket in sockets:
        sio.eio.sockets.pop(socket.sid, None)
        socket.queue.put_nowait(None)


async def _unless(hurry: asyncio.Event, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until it ends or `hurry` is set, whichever comes first."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(hurry.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, waiter):
            pending.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)
