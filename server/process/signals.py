"""SIGINT and SIGTERM for a node run from the command line, each handled once, in order.

The first starts a graceful shutdown: the node stops listening, tells its sockets, and
gives running tasks the grace period (`SHUTDOWN_GRACE_S`) to end by themselves. The
second cuts the grace short: running tasks end at once, `failed` with their partial text,
are finalized, and the node exits. Any further one is only logged: the node is already
ending as fast as it can, and a signal must never interrupt the finalizes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_runner import GracefulExit

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ShutdownSignals:
    """Counts the stop signals a node received; `hurry` is set by the second one."""

    def __init__(self) -> None:
        self.received = 0
        self.hurry = asyncio.Event()
        self._on_hurry: list[Callable[[], None]] = []

    def on_hurry(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the second signal arrives (at once if it already has)."""
        self._on_hurry.append(callback)
        if self.hurry.is_set():
            callback()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: int) -> None:
        self.received += 1
        name = signal.Signals(sig).name
        if self.received == 1:
            log.warning("%s: shutting down; send it again to end running tasks now", name)
            raise GracefulExit  # run_node_app (server/http/heads.py) runs shutdown and cleanup
        if self.received == 2:
            log.warning("%s again: ending running tasks now", name)
            self.hurry.set()
            for callback in self._on_hurry:
                callback()
            return
        log.warning("%s: already ending running tasks", name)


SHUTDOWN_SIGNALS = web.AppKey("shutdown_signals", ShutdownSignals)


def handle_stop_signals(app: web.Application) -> None:
    """Install the handlers once the application's loop runs (instead of aiohttp's)."""
    signals = app[SHUTDOWN_SIGNALS] = ShutdownSignals()

    async def install(app: web.Application) -> None:
        signals.install(asyncio.get_running_loop())

    app.on_startup.append(install)
