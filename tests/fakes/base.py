"""The lifecycle every fake provider server shares: an aiohttp app on an ephemeral port of
127.0.0.1, started and stopped (also as an async context manager), with client disconnects
counted by the subclass and awaited by tests."""

from __future__ import annotations

import asyncio
from typing import Any, Self

from aiohttp import web


class FakeServerBase:
    """Subclasses add their routes in `routes()` and may move the base URL in `url_of()`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []  # every request's raw path and query, whatever its route
        self.disconnects = 0
        self.base_url = ""
        self._disconnect_event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._stopping = False  # a disconnect during shutdown is not the client's
        # Whole stream bodies by name: the model option `body=NAME` answers one as it is.
        self.bodies: dict[str, bytes] = {}

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @web.middleware
    async def _record_path(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.paths.append(request.raw_path)
        response: web.StreamResponse = await handler(request)
        return response

    async def send_body(self, request: web.Request, name: str) -> web.StreamResponse:
        """Answer 200 with the stored body `name`, written in small pieces, then end it."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        body = self.bodies[name]
        for i in range(0, len(body), 64):
            await resp.write(body[i : i + 64])
        await resp.write_eof()
        return resp

    def url_of(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    async def start(self, port: int = 0) -> str:
        """Bind 127.0.0.1 on `port` (0: an ephemeral one) and return the base URL."""
        app = web.Application(middlewares=[self._record_path])
        self.routes(app)
        # handler_cancellation: a client disconnect cancels the handler at once, even mid-sleep.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.base_url = self.url_of(self._runner.addresses[0][1])
        return self.base_url

    async def stop(self) -> None:
        """Shut the server down (in-flight streams are cancelled)."""
        if self._runner is not None:
            self._stopping = True
            await self._runner.cleanup()
            self._stopping = False
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        """Until a client went away before the stream's end; False on timeout."""
        try:
            await asyncio.wait_for(self._disconnect_event.wait(), timeout)
        except TimeoutError:
            return False
        return True
