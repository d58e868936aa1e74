"""The long-polling transport's request bodies, read whole.

Engine.IO reads a polling POST with `environ["wsgi.input"].read(length)`, after checking the
announced length against `max_http_buffer_size`. Under aiohttp that input is the request's
`StreamReader`, whose `read(n)` returns what has arrived so far, at most n bytes: a payload
larger than one read brings (about a megabyte over loopback, less over a real network) was
cut short and its packet refused as malformed, so a large `execute` (an image at the
documented maximum) failed over polling while the same event worked over a websocket.
`WholeBody` reads exactly the announced length instead, within a deadline (a session's
heartbeat interval and timeout), so a client that announces a large body and trickles it
cannot hold the request and its buffer for longer than a silent session lives.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import StreamReader


class WholeBody:
    """`wsgi.input` whose `read(n)` waits for all n bytes: fewer when the client sent fewer
    than it announced and closed, nothing when they did not come within `timeout_s` (then
    the POST carries no packet)."""

    def __init__(self, content: StreamReader, timeout_s: float) -> None:
        self._content = content
        self._timeout_s = timeout_s

    async def read(self, length: int = -1) -> bytes:
        try:
            async with asyncio.timeout(self._timeout_s):
                if length < 0:
                    return await self._content.read()
                return await self._content.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except TimeoutError:
            return b""


def use_whole_bodies(eio: Any) -> None:
    """Make one Engine.IO server (not every server in the process) read polling bodies whole."""
    translate = eio._async["translate_request"]
    interval = eio.ping_interval  # Engine.IO also takes (interval, grace)
    interval = sum(interval) if isinstance(interval, tuple) else interval
    timeout_s = float(interval) + float(eio.ping_timeout)

    def whole(request: Any, *args: Any, **kwargs: Any) -> Any:
        environ = translate(request, *args, **kwargs)
        environ["wsgi.input"] = WholeBody(request.content, timeout_s)
        return environ

    eio._async = {**eio._async, "translate_request": whole}
