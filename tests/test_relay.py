"""The relay on its own, against real Redis: races between a history read and a task's end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
import redis.asyncio as aioredis

from engine.redis_keys import RedisKeys
from engine.stream.live import publish_live
from engine.stream.records import encode_chunk, encode_done
from engine.stream.relay import Relay
from tests.conftest import Infra, redis_of
from tests.nodes import until


class Inbox:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def send(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, payload))


@pytest_asyncio.fixture
async def redis_client(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = redis_of(infra)
    yield client
    await client.aclose()


def _done(task_id: str, text: str, last_seq: int) -> dict[str, Any]:
    return {"task_id": task_id, "status": "completed", "text": text, "last_seq": last_seq}


async def test_task_ending_between_history_read_and_database_read_loses_no_chunk(
    redis_client: aioredis.Redis,
) -> None:
    """The history read finds nothing; before the database answers, the task streams its
    only chunk and ends. The subscriber must still get that chunk before `task_done`."""
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    task_id = str(uuid.uuid4())
    final = _done(task_id, "all of it", 1)

    async def load_final(tid: str) -> dict[str, Any] | None:
        # The task's whole life happens while the relay waits on Postgres.
        history = keys.history(tid)
        await redis_client.xadd(history, {"r": encode_chunk(tid, 1, "all of it")})
        await redis_client.xadd(history, {"r": encode_done(final)})
        return final

    relay = Relay(redis_client, keys, load_final)
    listener = asyncio.create_task(relay.run())
    try:
        inbox = Inbox()
        result = await asyncio.wait_for(relay.subscribe(task_id, "s1", inbox), 10)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await relay.close()
    assert [e for e, _ in inbox.events] == ["task_chunk", "task_done"]
    assert inbox.events[0][1]["text"] == "all of it" and inbox.events[0][1]["seq"] == 1
    assert result.status == "completed" and result.last_seq == 1


async def test_expired_history_falls_back_to_the_database_record(
    redis_client: aioredis.Redis,
) -> None:
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    task_id = str(uuid.uuid4())
    final = _done(task_id, "kept in postgres", 3)

    async def load_final(tid: str) -> dict[str, Any] | None:
        return final

    relay = Relay(redis_client, keys, load_final)
    listener = asyncio.create_task(relay.run())
    try:
        inbox = Inbox()
        result = await asyncio.wait_for(relay.subscribe(task_id, "s1", inbox, after_seq=1), 10)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await relay.close()
    assert inbox.events == [("task_done", final)]
    assert result.status == "completed" and result.last_seq == 3


async def test_a_record_that_skips_ahead_waits_for_the_missing_ones_from_history(
    redis_client: aioredis.Redis,
) -> None:
    """A live record beyond a gap (chunks lost with a Redis that went away) is not sent
    until the history, written again by the publisher, fills the gap: never a hole."""
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    task_id = str(uuid.uuid4())
    history = keys.history(task_id)
    await redis_client.xadd(history, {"r": encode_chunk(task_id, 1, "a")})

    async def load_final(tid: str) -> dict[str, Any] | None:
        return None

    relay = Relay(redis_client, keys, load_final)
    listener = asyncio.create_task(relay.run())
    inbox = Inbox()
    try:
        await asyncio.wait_for(relay.subscribe(task_id, "s1", inbox, fresh=True), 10)
        await publish_live(redis_client, keys.live(task_id), encode_chunk(task_id, 3, "c"))
        # The history gets what the subscriber missed, then the task ends.
        await redis_client.delete(history)
        for seq, text in ((1, "a"), (2, "b"), (3, "c")):
            await redis_client.xadd(history, {"r": encode_chunk(task_id, seq, text)})
        final = encode_done(_done(task_id, "abc", 3))
        await redis_client.xadd(history, {"r": final})
        await publish_live(redis_client, keys.live(task_id), final)
        await until(lambda: inbox.events[-1][0] == "task_done", what="task_done")
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await relay.close()
    assert [(e, p.get("seq")) for e, p in inbox.events] == [
        ("task_chunk", 1),
        ("task_chunk", 2),
        ("task_chunk", 3),
        ("task_done", None),
    ]


async def test_a_terminal_record_redis_lost_comes_from_the_database(
    redis_client: aioredis.Redis,
) -> None:
    """The task ended while the node's pub/sub connection was down and Redis lost the
    terminal record: when the connection is back, the subscriber gets `task_done` from
    the database (the history has the chunks)."""
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    task_id = str(uuid.uuid4())
    history = keys.history(task_id)
    await redis_client.xadd(history, {"r": encode_chunk(task_id, 1, "a")})
    ended: dict[str, Any] = {}

    async def load_final(tid: str) -> dict[str, Any] | None:
        return ended.get(tid)

    relay = Relay(redis_client, keys, load_final)
    listener = asyncio.create_task(relay.run())
    inbox = Inbox()
    try:
        await asyncio.wait_for(relay.subscribe(task_id, "s1", inbox, fresh=True), 10)
        await redis_client.xadd(history, {"r": encode_chunk(task_id, 2, "b")})
        ended[task_id] = _done(task_id, "ab", 2)  # finalized; its record never reached Redis
        await relay._renew()  # the pub/sub connection drops; redis-py reconnects
        await until(lambda: bool(inbox.events) and inbox.events[-1][0] == "task_done", 15)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await relay.close()
    assert [(e, p.get("seq")) for e, p in inbox.events] == [
        ("task_chunk", 1),
        ("task_chunk", 2),
        ("task_done", None),
    ]
    assert inbox.events[-1][1] == ended[task_id]
