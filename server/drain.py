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
IDLE_CHECK_S = 0.5

ShutdownHandler = Callable[[web.Application], Awaitable[None]]


def drain_on_shutdown(
    sio: socketio.AsyncServer | None, busy: Callable[[str], bool] | None = None
) -> ShutdownHandler:
    """On SIGTERM (after the node stopped listening): tell this node's sockets to reconnect
    elsewhere, stop taking jobs, give running tasks the grace period, then end the rest.

    `busy(sid)`: whether a socket still waits for a running task's events. During the grace
    the others are closed as soon as they are idle; every socket is closed at the end."""

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
        idle = (
            asyncio.create_task(_close_idle(sio, busy), name="close-idle-sockets")
            if sio is not None and busy is not None
            else None
        )
        try:
            if node is not None:
                await _unless(hurry, node.drain(settings.shutdown_grace_s))
        finally:
            if idle is not None:
                idle.cancel()
                await asyncio.gather(idle, return_exceptions=True)
        supervisor = app[ENGINE].supervisor
        if len(supervisor):
            log.warning("ending %d running task(s) as failed", len(supervisor))
            await supervisor.close()
        if sio is not None:
            await close_sockets(sio)

    return drain


async def _close_idle(sio: socketio.AsyncServer, busy: Callable[[str], bool]) -> None:
    """Every half second, close the sockets that wait for no running task."""
    while True:
        await close_sockets(sio, lambda sid: not busy(sid))
        await asyncio.sleep(IDLE_CHECK_S)


async def close_sockets(
    sio: socketio.AsyncServer,
    which: Callable[[str], bool] | None = None,
    timeout_s: float = 1.0,
) -> None:
    """Close every socket of this node (or those `which` picks, by Socket.IO sid), once
    their tasks have ended and their `task_done` went out. Engine.IO would wait for each
    client to close its transport, and an open one would hold the shutdown until its
    heartbeat fails (some 20 s); so each socket gets the CLOSE packet (within `timeout_s`,
    for a client that stopped reading), then its transport is ended from this side: a None
    on its queue ends Engine.IO's writer, which closes the websocket or answers the poll."""
    sockets = [
        socket
        for eio_sid, socket in list(sio.eio.sockets.items())
        if which is None or which(sio.manager.sid_from_eio_sid(eio_sid, "/") or "")
    ]
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
