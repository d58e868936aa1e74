"""What the client libraries' tests run against: two real nodes sharing Postgres and Redis
behind a TCP load balancer that tests can cut, hold and switch, plus a small HTTP control
API so that `node --test` (another process) can do the same.

- `POST /drop?hold_ms=N`: close every open connection and refuse new ones for N ms (a
  network drop); connections then reach the current node again.
- `POST /drain`: node A drains as on SIGTERM (server's own shutdown handler: it emits
  `server_draining`, stops taking jobs, lets running tasks end) and the balancer sends new
  connections to node B.
- `POST /slow-acks?ms=N`: node A answers `execute` N ms late, so chunks reach the client
  before the ack does (the order the protocol allows; forced here so a test sees it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engine.settings import Settings
from server.drain import drain_on_shutdown
from server.realtime.sessions import SESSIONS
from tests.conftest import Server, start_server, stop_server


class Balancer:
    """A TCP proxy on loopback in front of one node at a time."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.refuse_until = 0.0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self.accepted = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def drop(self, hold_s: float) -> None:
        self.refuse_until = asyncio.get_running_loop().time() + hold_s
        for writer in list(self._conns):
            writer.transport.abort()  # as a cut cable: no close handshake

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if asyncio.get_running_loop().time() < self.refuse_until:
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._conns.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()

        pumps = [
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ]
        self._pumps.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._pumps.difference_update(pumps)
            for w in (writer, up_writer):
                self._conns.discard(w)
                w.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._conns):
            writer.transport.abort()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)


def slow_acks(node: Server, delay: dict[str, float]) -> None:
    """Wrap node's `execute` handler so its ack leaves `delay["s"]` late."""
    sio = node.app[SESSIONS].sio
    handler = sio.handlers["/"]["execute"]

    async def late(sid: str, data: Any = None, *extra: Any) -> Any:
        ack = await handler(sid, data, *extra)
        if delay["s"]:
            await asyncio.sleep(delay["s"])
        return ack

    sio.handlers["/"]["execute"] = late


@dataclass
class Harness:
    a: Server
    b: Server
    balancer: Balancer
    url: str  # the balancer
    control_url: str = ""
    token: str = ""
    ack_delay: dict[str, float] = field(default_factory=lambda: {"s": 0.0})
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    def drop(self, hold_s: float = 0.0) -> None:
        self.balancer.drop(hold_s)

    def drain_a(self) -> None:
        """Node A drains as on SIGTERM; new connections go to node B."""
        self.balancer.target = int(self.b.url.rsplit(":", 1)[1])
        sio = self.a.app[SESSIONS].sio
        task = asyncio.create_task(drain_on_shutdown(sio)(self.a.app))
        self._background.add(task)

    async def close(self) -> None:
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.balancer.close()


def control_app(h: Harness) -> web.Application:
    async def drop(request: web.Request) -> web.Response:
        h.drop(int(request.query.get("hold_ms", "0")) / 1000)
        return web.json_response({"ok": True})

    async def drain(request: web.Request) -> web.Response:
        h.drain_a()
        return web.json_response({"ok": True})

    async def slow(request: web.Request) -> web.Response:
        h.ack_delay["s"] = int(request.query.get("ms", "0")) / 1000
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/drop", drop)
    app.router.add_post("/drain", drain)
    app.router.add_post("/slow-acks", slow)
    return app


@contextlib.asynccontextmanager
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    """Two nodes (A, B) on one database and Redis prefix, the balancer in front of A, and
    the control API; everything stopped on exit."""
    shared = settings.model_copy(update={"shutdown_grace_s": 20})
    a = await start_server(shared)
    b = await start_server(shared)
    balancer = Balancer(int(a.url.rsplit(":", 1)[1]))
    port = await balancer.start()
    h = Harness(a, b, balancer, f"http://127.0.0.1:{port}")
    slow_acks(a, h.ack_delay)
    slow_acks(b, h.ack_delay)
    runner = web.AppRunner(control_app(h))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    h.control_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    h.token = await a.new_key()
    try:
        yield h
    finally:
        await runner.cleanup()
        await h.close()
        await stop_server(b)
        await stop_server(a)
