"""A faster JSON for Socket.IO packets: orjson where it gives the same result.

Sending is the hot path (every `task_chunk`), so packets are encoded with orjson, and with
the standard module wherever orjson refuses the input (integers beyond 64 bits, non-string
keys, deep nesting). Packets the server receives are decoded by the standard module:
orjson reads huge integers as floats and refuses NaN, and what a client sends must be
judged exactly as before. The load generator reads only the server's own packets, so it
decodes with orjson too.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import socketio


def _dumps(obj: Any, **kwargs: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, **kwargs)


def _fast_loads(data: str | bytes, **kwargs: Any) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data, **kwargs)


class _ServerJson:
    """The `dumps`/`loads` pair python-socketio calls, for the server."""

    dumps = staticmethod(_dumps)
    loads = staticmethod(json.loads)


class _ClientJson:
    """For the bench's clients, which read only what the server wrote."""

    dumps = staticmethod(_dumps)
    loads = staticmethod(_fast_loads)


class FastPacket(socketio.packet.Packet):  # type: ignore[misc]
    """Server packets; passed as the server's `serializer`, so only that server uses them
    (python-socketio's `json=` option would change every client and server in the process)."""

    json = _ServerJson


class FastClientPacket(socketio.packet.Packet):  # type: ignore[misc]
    """Packets of the bench's clients."""

    json = _ClientJson
