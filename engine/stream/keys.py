"""Redis key names and the encoding of stream records (chunks and the terminal record)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

CHUNK = "c"
DONE = "d"


@dataclass(frozen=True)
class Keys:
    """Every Redis key and channel of one deployment, under a common prefix."""

    prefix: str = "ps:"

    def history(self, task_id: UUID | str) -> str:
        """Capped stream with every chunk of a task, then its terminal record."""
        return f"{self.prefix}h:{task_id}"

    def live(self, task_id: UUID | str) -> str:
        """Pub/sub channel with the same records, for live delivery."""
        return f"{self.prefix}l:{task_id}"

    def cancel_channel(self) -> str:
        return f"{self.prefix}cancel"

    def idempotency(self, user_id: UUID, request_id: str) -> str:
        return f"{self.prefix}idem:{user_id}:{request_id}"


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
