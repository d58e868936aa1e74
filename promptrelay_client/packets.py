"""The client's Socket.IO packets: the server's events read with orjson when it is
installed (it comes with the server), the standard module otherwise.

Reading is the hot path (every `task_chunk`). The client reads only what the server
wrote, whose integers fit in 64 bits, and orjson reads that exactly as the standard
module does; whatever orjson refuses (NaN, Infinity) is read by the standard module.
What the client sends is written as python-socketio's default packets write it, so a
request means to the server what it always meant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio
from engineio import json as default_json  # python-socketio's: the standard module, bounded

_std_loads: Callable[..., Any] = default_json.loads
_std_dumps: Callable[..., str] = default_json.dumps


def _reader() -> Callable[..., Any]:
    """orjson's `loads` where it is installed (the server's install has it), falling back
    on the standard module for what orjson refuses; else the standard module's."""
    try:
        import orjson
    except ImportError:
        return _std_loads

    def loads(data: str | bytes, **kwargs: Any) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return _std_loads(data, **kwargs)

    return loads


class _Json:
    """The `dumps`/`loads` pair python-socketio calls."""

    dumps = staticmethod(_std_dumps)
    loads = staticmethod(_reader())


class ClientPacket(socketio.packet.Packet):  # type: ignore[misc]
    """Passed as the client's `serializer`, so only the client's own packets use it."""

    json = _Json
