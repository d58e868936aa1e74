"""The websocket transport without permessage-deflate.

Browsers (and socket.io-client in Node) offer permessage-deflate, and aiohttp accepts it
by default. For our frames it does not pay: a `task_chunk` is about a hundred bytes, where
deflate saves a few dozen bytes of a packet that TCP and TLS framing make several times
larger anyway, while each compressing socket holds a zlib compressor and decompressor,
about 100 KB of server memory per idle socket (measured in docs/benchmarks.md), and every
frame costs a compression. So the handshake declines it; long-polling keeps Engine.IO's
HTTP compression, which applies only to payloads of 1 KB and more.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from engineio.async_drivers.aiohttp import WebSocket


class PlainWebSocket(WebSocket):  # type: ignore[misc]
    """Engine.IO's aiohttp websocket, answering the handshake without compression."""

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def use_plain_websockets(eio: Any) -> None:
    """Make one Engine.IO server (not every server in the process) use PlainWebSocket."""
    eio._async = {**eio._async, "websocket": PlainWebSocket}
