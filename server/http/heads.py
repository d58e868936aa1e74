"""Request heads aiohttp's parser refuses, and the runner that serves a node with that answer.

A request line or header past the parser's limits (`HANDLER_ARGS`), or a head that is not
HTTP, never reaches a route: aiohttp answers it itself, in plain text quoting the start of
the offending line (an `Authorization` header: the API key) and logs it with a traceback.
Here it is `400 invalid_request` in JSON that quotes nothing, logged as one warning line
naming only the client address and the kind of fault.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_runner import GracefulExit

from engine.errors import InvalidRequest

log = logging.getLogger(__name__)
# aiohttp's own parser refuses longer request lines and header fields; it reads up to this
# much so that a URL over 8 KB gets server/http/throttle.py's 414 with its limit named.
HANDLER_ARGS: dict[str, Any] = {"max_line_size": 64 * 1024}
HEAD_MESSAGE = "the request line or a header is malformed or too long"


class QuietRequestHandler(RequestHandler):
    """aiohttp's connection handler, with a refused request head answered in JSON."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, BadHttpMessage):
            return super().handle_error(request, status, exc, message)
        # The exception's text quotes the line: never logged, never sent.
        log.warning("refused a request head from %s (%s)", request.remote, type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent on this connection")
        error = InvalidRequest(
            HEAD_MESSAGE, details={"errors": [{"field": "(head)", "message": HEAD_MESSAGE}]}
        )
        response = web.json_response({"error": error.to_dict()}, status=400)
        response.force_close()
        return response


class QuietServer(web.Server):
    """aiohttp's low-level server, making `QuietRequestHandler`s."""

    def __call__(self) -> RequestHandler:
        return QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class NodeRunner(web.AppRunner):
    """`web.AppRunner` whose server answers refused request heads in JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = QuietServer  # same state; only the handler it makes differs
        return server


def run_node_app(
    app: web.Application,
    *,
    host: str | None,
    port: int,
    backlog: int,
    shutdown_timeout: float,
    on_ready: Callable[[], None],
    loop: asyncio.AbstractEventLoop | None = None,
) -> None:
    """Serve `app` until GracefulExit (the stop signal) or Ctrl-C, as aiohttp's `run_app`
    does, with a `NodeRunner`; cleanup contexts have run when this returns."""
    loop = loop or asyncio.new_event_loop()

    async def serve() -> None:
        runner = NodeRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=shutdown_timeout,
            **HANDLER_ARGS,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, backlog=backlog).start()
            on_ready()
            await asyncio.Event().wait()  # until the stop signal ends the loop's run
        finally:
            await runner.cleanup()

    main = loop.create_task(serve())
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            rest = asyncio.all_tasks(loop)
            for task in rest:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
