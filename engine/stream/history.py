"""Reading a task's history stream: every record in order, or the text it adds up to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from engine.redis_keys import RedisKeys
from engine.stream.records import CHUNK, DONE, REASONING, TOOL_CALL, Record, decode_record


async def read_records(redis: aioredis.Redis, keys: RedisKeys, task_id: str) -> list[Record]:
    """Every record of the task's history, oldest first: (kind, payload)."""
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.history(task_id))
    )
    return [decode_record(fields[b"r"]) for _, fields in entries]


@dataclass(frozen=True)
class Partial:
    """What a history holds: the text so far, its last seq, whether the task ended, and
    the reasoning so far."""

    text: str
    last_seq: int
    ended: bool
    reasoning: str = ""


def fold(records: list[Record]) -> Partial:
    """The text of the chunks in seq order (each seq once) and whether a terminal record is
    there. Pure: no I/O."""
    parts: list[str] = []
    thoughts: list[str] = []
    last_seq, ended = 0, False
    for kind, payload in records:
        if kind == CHUNK and payload["seq"] > last_seq:
            parts.append(payload["text"])
            last_seq = payload["seq"]
        elif kind == REASONING and payload["seq"] > last_seq:
            thoughts.append(payload["text"])
            last_seq = payload["seq"]
        elif kind == TOOL_CALL and payload["seq"] > last_seq:
            last_seq = payload["seq"]
        elif kind == DONE:
            ended = True
    return Partial("".join(parts), last_seq, ended, "".join(thoughts))


async def read_partial(redis: aioredis.Redis, keys: RedisKeys, task_id: str) -> Partial:
    """The task's text so far, last seq and whether it ended, from its history."""
    return fold(await read_records(redis, keys, task_id))
