"""The relay on its own, against real Redis: races between a history read and a task's end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
import redis.asyncio as aioredis

from engine.keys import Keys
from engine.stream.records import encode_chunk, encode_done
from engine.stream.relay import Relay
from tests.conftest import Infra


class Inbox:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def send(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, payload))


@pytest_asyncio.fixture
async def redis_client(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


def _done(task_id: str, text: str, last_seq: int) -> dict[str, Any]:
    return {"task_id": task_id, "status": "completed", "text": text, "last_seq": last_seq}


async def test_task_ending_between_history_read_and_database_read_loses_no_chunk(
    redis_client: aioredis.Redis,
) -> None:
    """The history read finds nothing; before the database answers, the task streams its
    only chunk and ends. The subscriber must still get that chunk before `task_done`."""
    keys = Keys(f"t{uuid.uuid4().hex[:8]}:")
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
    keys = Keys(f"t{uuid.uuid4().hex[:8]}:")
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
