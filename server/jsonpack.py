"""A faster JSON for Socket.IO packets: orjson, with the standard library as the fallback.

python-socketio takes a `json` module with `dumps` and `loads`. orjson encodes and decodes
several times faster; wherever it refuses input that the standard module accepts (non-finite
numbers, integers beyond 64 bits, non-string keys, deep nesting), the standard module runs,
so packets decode and fail exactly as before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class _PacketJson:
    """The `dumps`/`loads` pair python-socketio calls."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(obj).decode()
        except TypeError:
            return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(data: str | bytes, **kwargs: Any) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return json.loads(data, **kwargs)


packet_json = _PacketJson()
