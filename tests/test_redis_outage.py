"""Redis killed (SIGKILL) and restarted under `promptrelay serve` streaming 50 tasks to
Socket.IO and SSE subscribers: every subscriber gets every chunk once and `task_done`
within seconds of Redis being back, no task fails, and the outage is logged once."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from engine.errors import ServiceUnavailable
from engine.redis_keys import RedisKeys
from engine.stream.publisher import ChunkPublisher
from engine.stream.records import decode_record
from server.process.embedded import EmbeddedRedis
from tests.conftest import Client, Infra, assert_intact
from tests.faults import (
    SseReader,
    adhoc,
    read_all,
    resumed_after,
    spawn_unlimited,
    timestamp_chunks,
)
from tests.nodes import Cluster, until

TASKS = 50
SOCKETS = 5
DOWN_S = 6.0  # how long Redis stays away
RESUME_S = 5.0  # every subscriber streams again this soon after Redis is back


async def _wait_done(client: Client, task_id: str) -> None:
    await client.wait_done(task_id, 90)


async def _claims(redis: EmbeddedRedis, cluster: Cluster, task_ids: list[str]) -> list[str]:
    client = aioredis.Redis.from_url(redis.url)
    try:
        raw = await client.mget([cluster.keys.claim(t) for t in task_ids])
    finally:
        await client.aclose()
    return [r.decode() if r else "" for r in raw]


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("persistence", "crash"),
    [("aof", True), ("none", True), ("rdb", False)],
    ids=["sigkill-aof", "sigkill-no-persistence", "sigterm-snapshot"],
)
async def test_redis_restarted_mid_stream_every_subscriber_gets_everything(
    infra: Infra, database_url: str, tmp_path: Path, persistence: str, crash: bool
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", persistence=persistence)
    redis.start()
    cluster = Cluster(database_url, redis.url, tmp_path)
    try:
        node = spawn_unlimited(cluster, "serve", "n1", lease_ttl_s="15")
        await node.wait_ready()
        token = await cluster.new_key()
        clients = [await cluster.client(node, token) for _ in range(SOCKETS)]
        arrivals = [timestamp_chunks(c) for c in clients]
        # 180 tokens at 12 per second: about 15 s each, so every task spans the outage
        # and the heartbeats after it.
        acks = await asyncio.gather(
            *(clients[i % SOCKETS].call("execute", adhoc(180, 12)) for i in range(TASKS))
        )
        owners = {a["task_id"]: clients[i % SOCKETS] for i, a in enumerate(acks)}
        readers = [SseReader(task_id) for task_id in owners]
        sse = await read_all(readers, node.url, token)
        socket_done = [asyncio.create_task(_wait_done(c, t)) for t, c in owners.items()]
        await until(
            lambda: all(c.chunks[t] for t, c in owners.items()) and all(r.chunks for r in readers),
            what="a chunk on every subscriber",
        )

        if crash:
            redis.kill()  # nothing saved on the way out
        else:
            redis.stop()  # a clean restart: the snapshot is saved and loaded again
        await asyncio.sleep(DOWN_S)  # the outage itself, not a wait for a result
        redis.start()
        back = time.monotonic()

        try:
            await asyncio.wait_for(asyncio.gather(*socket_done), 90)
            await asyncio.wait_for(asyncio.gather(*sse), 90)
        except TimeoutError:
            missing = [t for t, c in owners.items() if t not in c.done]
            stuck = [(r.task_id, len(r.chunks)) for r in readers if r.done is None]
            raise AssertionError(f"no task_done: {missing}, SSE {stuck}\n{node.log()}") from None
        for task_id, client in owners.items():
            assert assert_intact(client, task_id)["status"] == "completed"
        for reader in readers:
            assert reader.assert_intact()["status"] == "completed"
            assert reader.done == owners[reader.task_id].done[reader.task_id]
        # Chunks of the outage arrive at once when Redis is back, then the stream goes on.
        resumed = resumed_after(
            [a[t] for a in arrivals for t in a] + [r.arrivals for r in readers], back
        )
        print(
            f"{persistence}: every subscriber streamed again {resumed:.1f} s after Redis was back"
        )
        assert resumed < RESUME_S

        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT status, response_text FROM ai_tasks WHERE task_id = ANY($1::uuid[])",
                [uuid.UUID(t) for t in owners],
            )
        finally:
            await conn.close()
        assert sorted(r["status"] for r in rows) == ["completed"] * TASKS
        # Each task's claim is held by its node, also where Redis lost it: re-taken.
        claims = await _claims(redis, cluster, list(owners))
        assert claims == ["n1"] * TASKS
        # The node's subscribers take their records from its publisher (the tasks run
        # there), so the publisher is what waits for Redis: it logs the outage once each way.
        log = node.log()
        assert log.count("Redis (chunk flush) unreachable") == 1, log
        assert log.count("Redis (chunk flush) is back") == 1, log
        assert log.count("Redis (relay) unreachable") <= 1, log
        assert "Traceback" not in log and "never retrieved" not in log, log
    finally:
        await cluster.stop()
        redis.stop()


async def test_the_publisher_holds_chunks_while_redis_is_away_within_a_bound(
    tmp_path: Path,
) -> None:
    """Text appended while Redis is down is published in order once it is back; beyond
    the bound, a task's next delta fails with `service_unavailable` instead of growing."""
    redis = EmbeddedRedis(tmp_path / "redis", persistence="none")
    redis.start()
    client = aioredis.Redis.from_url(redis.url)
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    publisher = ChunkPublisher(client, keys, 0.01, 1000, max_buffered_bytes=64)
    loop = asyncio.create_task(publisher.run())
    task_id = str(uuid.uuid4())
    try:
        publisher.open(task_id)
        publisher.append(task_id, "before ")
        await until(lambda: publisher.flushes >= 1, what="the first flush")
        redis.kill()
        publisher.append(task_id, "during ")
        await until(lambda: publisher.outage.down, what="the flush to fail")
        publisher.append(task_id, "x" * 64)  # over the bound now
        with pytest.raises(ServiceUnavailable):
            publisher.append(task_id, "too much")
        redis.start()  # empty: the history is written again, in order
        last_seq = await asyncio.wait_for(publisher.drain(task_id), 30)
        entries = await client.xrange(keys.history(task_id))
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await client.aclose()
        redis.stop()
    chunks = [decode_record(fields[b"r"])[1] for _, fields in entries]
    assert [c["seq"] for c in chunks] == list(range(1, last_seq + 1))
    assert "".join(c["text"] for c in chunks) == "before during " + "x" * 64
    assert publisher.rewrites == 1


async def test_tasks_ending_after_redis_lost_its_data_get_their_histories_written_again(
    tmp_path: Path,
) -> None:
    """Redis restarts empty after the tasks' last flush and before their ends: the ends
    notice it before any terminal record is written, and the histories are written again
    once, for all of them, in order."""
    redis = EmbeddedRedis(tmp_path / "redis", persistence="none")
    redis.start()
    client = aioredis.Redis.from_url(redis.url)
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    publisher = ChunkPublisher(client, keys, 0.01, 1000)
    loop = asyncio.create_task(publisher.run())
    task_ids = [str(uuid.uuid4()) for _ in range(20)]
    try:
        for task_id in task_ids:
            publisher.open(task_id)
            publisher.append(task_id, f"text of {task_id}")
        await until(lambda: publisher.flushes >= 1, what="the flush")
        redis.stop()
        redis.start()  # no persistence: every history is gone
        last_seqs = await asyncio.wait_for(
            asyncio.gather(*(publisher.drain(t) for t in task_ids)), 30
        )
        histories = [await client.xrange(keys.history(t)) for t in task_ids]
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await client.aclose()
        redis.stop()
    assert last_seqs == [1] * len(task_ids)
    for task_id, entries in zip(task_ids, histories, strict=True):
        assert [decode_record(fields[b"r"])[1] for _, fields in entries] == [
            {"task_id": task_id, "seq": 1, "text": f"text of {task_id}"}
        ]
    assert publisher.rewrites == 1
