"""The encoding of a task's stream records: chunks and the terminal record."""

from __future__ import annotations

import json
from typing import Any

CHUNK = "c"
DONE = "d"


def encode_chunk(task_id: str, seq: int, text: str) -> str:
    return json.dumps(
        {"k": CHUNK, "task_id": task_id, "seq": seq, "text": text},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def encode_done(payload: dict[str, Any]) -> str:
    return json.dumps({"k": DONE, **payload}, separators=(",", ":"), ensure_ascii=False)


def decode_record(raw: str | bytes) -> tuple[str, dict[str, Any]]:
    """(kind, payload) of a stream record; payload is what the client receives."""
    data: dict[str, Any] = json.loads(raw)
    kind = data.pop("k")
    return kind, data
