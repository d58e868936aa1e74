"""The websocket transport without permessage-deflate.

Browsers (and socket.io-client in Node) offer permessage-deflate, and aiohttp accepts it
by default. For our frames it does not pay: a `task_chunk` is about a hundred bytes, where
deflate saves a few dozen bytes of a packet that TCP and TLS framing make several times
larger anyway, while each compressing socket holds a zlib compressor and decompressor,
about 100 KB of server memory per idle socket (measured in docs/benchmarks.md), and every
frame costs a compression. So the handshake declines it; long-polling keeps Engine.IO's
HTTP compression, which applies only to payloads of 1 KB and more.

A text frame that is not an Engine.IO packet (an unknown type, bad base64, JSON nested past
the recursion limit) would raise inside Engine.IO's read loop, out of the upgraded
request: a traceback in the log and an HTTP 500 written into the websocket. Such a frame
instead ends the connection as a client's close does, with one warning line.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket

log = logging.getLogger(__name__)


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

    async def wait(self) -> Any:
        """The next frame; None (as for a closed connection) for one that is not Engine.IO."""
        data = await super().wait()
        if not isinstance(data, str) or (data[:1] == "4" and data[1:2].isdigit()):
            return data  # binary, or a Socket.IO message: Engine.IO reads it without parsing
        try:
            eio_packet.Packet(encoded_packet=data)
        except (ValueError, RecursionError) as exc:
            log.warning("not an Engine.IO frame (%s); closing the connection", type(exc).__name__)
            return None
        return data


def use_plain_websockets(eio: Any) -> None:
    """Make one Engine.IO server (not every server in the process) use PlainWebSocket."""
    eio._async = {**eio._async, "websocket": PlainWebSocket}
