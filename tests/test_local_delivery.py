"""Chunks of a task running on the subscriber's own node reach it in memory, not through
Redis pub/sub, while the history and the live channel for other nodes are written as before.

Observed on Redis itself: a raw client subscribed to every live channel sees each record
published, and `PUBSUB NUMSUB` says whether any node listens on the task's channel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
import redis.asyncio as aioredis

from engine.redis_keys import RedisKeys
from engine.settings import Settings
from engine.stream.history import read_records
from engine.stream.local import LocalFeed
from engine.stream.records import (
    CHUNK,
    DONE,
    chunk_payload,
    decode_record,
    encode_chunk,
    encode_done,
)
from engine.stream.relay import Relay
from tests.conftest import Client, Infra, Server, assert_intact, start_server, stop_server
from tests.nodes import until


def adhoc(max_tokens: int, tokens_per_second: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "go"}],
        "model": "simulated/test",
        "settings": {"max_tokens": max_tokens, "tokens_per_second": tokens_per_second},
    }


class LiveTap:
    """A plain Redis client subscribed to every live channel of a deployment: what Redis
    carries for other nodes."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self.pubsub = redis.pubsub()
        self.pattern = keys.live("*")
        self.records: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pubsub.psubscribe(self.pattern)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                kind, payload = decode_record(message["data"])
                self.records.setdefault(payload["task_id"], []).append((kind, payload))

    def seqs(self, task_id: str) -> list[int]:
        return [p["seq"] for k, p in self.records.get(task_id, []) if k == CHUNK]

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]


@pytest_asyncio.fixture
async def redis_client(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


async def listeners(redis: aioredis.Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


async def stream_and_sample(
    client: Client, redis: aioredis.Redis, keys: RedisKeys, task_id: str
) -> set[int]:
    """Until the task is done: how many nodes listened on its live channel, sampled."""
    seen: set[int] = set()
    while task_id not in client.done:
        seen.add(await listeners(redis, keys.live(task_id)))
        await asyncio.sleep(0.02)
    return seen


async def test_a_subscriber_on_the_running_node_gets_every_chunk_without_pubsub(
    server: Server, redis_client: aioredis.Redis
) -> None:
    keys = RedisKeys(server.settings.redis_prefix)
    tap = LiveTap(redis_client, keys)
    await tap.start()
    try:
        token = await server.new_key()
        client, late = await server.client(token), await server.client(token)
        ack = await client.call("execute", adhoc(max_tokens=80, tokens_per_second=100))
        task_id = ack["task_id"]
        await client.wait_chunks(task_id, 3)
        # A late subscriber on the same node: the history so far, then the rest, no gap.
        assert (await late.call("subscribe", {"task_id": task_id}))["ok"] is True
        listening = await stream_and_sample(client, redis_client, keys, task_id)
        await late.wait_done(task_id)
        await until(lambda: any(k == DONE for k, _ in tap.records.get(task_id, [])), 10)
        history = await read_records(redis_client, keys, task_id)
    finally:
        await tap.close()
    assert listening == {0}, "no node subscribed to the live channel of a task running on it"
    done = assert_intact(client, task_id)
    assert assert_intact(late, task_id) == done
    assert len(done["text"].split()) == 80 and done["last_seq"] > 3
    # Redis still carries every record for other nodes and late subscribers, in order.
    seqs = list(range(1, done["last_seq"] + 1))
    assert tap.seqs(task_id) == seqs
    assert [p["seq"] for k, p in history if k == CHUNK] == seqs
    assert history[-1] == (DONE, done) and tap.records[task_id][-1] == (DONE, done)


async def test_a_subscriber_on_another_node_gets_the_task_through_redis(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    keys = RedisKeys(settings.redis_prefix)
    a, b = await start_server(settings), await start_server(settings)
    try:
        token = await a.new_key()
        here, there = await a.client(token), await b.client(token)
        ack = await here.call("execute", adhoc(max_tokens=80, tokens_per_second=100))
        task_id = ack["task_id"]
        assert (await there.call("subscribe", {"task_id": task_id}))["ok"] is True
        await there.wait_chunks(task_id, 2)
        # The other node's subscription drops and comes back: it re-reads the history.
        assert await redis_client.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        listening = await stream_and_sample(here, redis_client, keys, task_id)
        await there.wait_done(task_id)
    finally:
        await stop_server(a)
        await stop_server(b)
    assert max(listening) == 1, "only the other node listens"
    done = assert_intact(here, task_id)
    assert assert_intact(there, task_id) == done
    assert len(done["text"].split()) == 80


class Inbox:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def send(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, payload))

    def seqs(self) -> list[int]:
        return [p["seq"] for e, p in self.events if e == "task_chunk"]


async def write_chunk(redis: aioredis.Redis, keys: RedisKeys, task_id: str, seq: int) -> None:
    """What the publisher writes for a chunk: the history entry and the live message."""
    record = encode_chunk(task_id, seq, f"w{seq} ")
    await redis.xadd(keys.history(task_id), {"r": record})
    await redis.publish(keys.live(task_id), record)


async def test_a_terminal_record_written_elsewhere_reaches_a_local_watch(
    redis_client: aioredis.Redis,
) -> None:
    """The runner here hands over chunks and then ends without a terminal record (a sweeper
    ended the task, or its finalize was parked while Postgres was away): the watch listens
    on the channel after all and gets `task_done`, whether it was written before the
    runner's end or after."""
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    feed = LocalFeed()

    async def load_final(tid: str) -> dict[str, Any] | None:
        return None

    relay = Relay(redis_client, keys, load_final, local=feed)
    listener = asyncio.create_task(relay.run())
    inboxes = {}
    try:
        for written_before_end in (True, False):
            task_id = str(uuid.uuid4())
            inbox = inboxes[written_before_end] = Inbox()
            feed.start(task_id)
            await relay.subscribe(task_id, "s1", inbox, fresh=True)
            for seq in (1, 2):
                await write_chunk(redis_client, keys, task_id, seq)
                feed.hand(task_id, CHUNK, chunk_payload(task_id, seq, f"w{seq} "))
            await until(lambda inbox=inbox: len(inbox.events) == 2, 10)
            assert await listeners(redis_client, keys.live(task_id)) == 0
            final = encode_done({"task_id": task_id, "status": "failed", "last_seq": 2})
            if written_before_end:
                await redis_client.xadd(keys.history(task_id), {"r": final})
                feed.end(task_id)
            else:
                feed.end(task_id)
                channel = keys.live(task_id)
                while not await listeners(redis_client, channel):
                    await asyncio.sleep(0.02)
                await redis_client.xadd(keys.history(task_id), {"r": final})
                await redis_client.publish(channel, final)
            await until(lambda inbox=inbox: inbox.events[-1][0] == "task_done", 10)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await relay.close()
    for inbox in inboxes.values():
        assert [e for e, _ in inbox.events] == ["task_chunk", "task_chunk", "task_done"]
        assert inbox.seqs() == [1, 2]
