"""Bounded waits and outages of the servers the node depends on, on real Postgres/Redis."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from db import tasks as task_rows
from db.pool import connect
from engine.redis_keys import RedisKeys
from engine.settings import Settings
from server.process.embedded import EmbeddedPostgres, EmbeddedRedis
from server.state import POOL, RELAY
from tests.conftest import assert_intact, start_server, stop_server
from tests.nodes import Blackhole, until

ADHOC = {
    "messages": [{"role": "user", "content": "hi"}],
    "model": "simulated/test",
    "settings": {"max_tokens": 5, "tokens_per_second": 0},
}


async def test_waiting_for_a_database_connection_is_bounded(settings: Settings) -> None:
    srv = await start_server(
        settings.model_copy(
            update={"db_pool_min": 1, "db_pool_max": 1, "db_acquire_timeout_s": 0.5}
        )
    )
    try:
        key = await srv.new_key()
        client = await srv.client(key)
        async with srv.app[POOL].acquire():  # the only connection is busy
            ack = await client.call("execute", ADHOC)
            assert ack["ok"] is False
            assert ack["error"]["code"] == "service_unavailable"
            async with aiohttp.ClientSession() as http:
                async with http.get(
                    f"{srv.url}/v1/tasks/{uuid.uuid4()}", headers={"Authorization": f"Bearer {key}"}
                ) as resp:
                    assert resp.status == 503
                    body = await resp.json()
            assert body["error"]["code"] == "service_unavailable"
        ack = await client.call("execute", ADHOC)  # free again: served
        assert ack["ok"] is True
        assert (await client.wait_done(ack["task_id"]))["status"] == "completed"
    finally:
        await stop_server(srv)


async def test_finalize_waits_in_redis_while_postgres_is_down(
    settings: Settings, tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")  # this test's own Postgres, stopped for real
    url = pg.start()
    redis = aioredis.Redis.from_url(settings.redis_url or "")
    try:
        srv = await start_server(settings.model_copy(update={"database_url": url}))
        try:
            client = await srv.client(await srv.new_key())
            ack = await client.call(
                "execute", {**ADHOC, "settings": {"max_tokens": 40, "tokens_per_second": 20}}
            )
            task_id = ack["task_id"]
            await until(lambda: bool(client.chunks[task_id]), what="a chunk")
            pg.stop()  # Postgres goes away while the task streams
            parked = RedisKeys(settings.redis_prefix).parked_finalizes()
            for _ in range(1200):
                if await redis.hlen(parked):
                    break
                await asyncio.sleep(0.05)
            assert await redis.hexists(parked, task_id), "the outcome was not parked"
            assert task_id not in client.done  # no task_done before the record is written
            pg.start()  # back: the parked finalize lands
            done = await client.wait_done(task_id, 60)
            assert done["status"] == "completed"
            assert_intact(client, task_id)
            conn = await asyncpg.connect(url)
            try:
                row = await conn.fetchrow(
                    "SELECT t.status, t.total_tokens, r.task_count, r.total_tokens AS run_total,"
                    " (SELECT count(*) FROM ai_usage_logs u WHERE u.task_id = t.task_id) AS logs"
                    " FROM ai_tasks t JOIN ai_runs r ON r.id = t.run_id WHERE t.task_id = $1",
                    uuid.UUID(task_id),
                )
            finally:
                await conn.close()
            assert row["status"] == "completed" and row["logs"] == 1
            assert row["task_count"] == 1
            assert row["total_tokens"] == row["run_total"] == done["usage"]["total_tokens"]
            assert not await redis.hexists(parked, task_id)
        finally:
            await stop_server(srv)
    finally:
        await redis.aclose()
        pg.stop()


async def test_a_silent_subscription_is_found_by_the_probe_and_renewed(
    settings: Settings, tmp_path: Path
) -> None:
    own = EmbeddedRedis(tmp_path / "redis")
    own.start()
    proxy = Blackhole(own.socket_path)
    port = await proxy.start()
    try:
        # The task runs on a worker: a subscriber on the node that runs its task takes the
        # records in memory, without any subscription to go silent.
        worker = await start_server(
            settings.model_copy(update={"redis_url": own.url, "role": "worker"})
        )
        srv = await start_server(
            settings.model_copy(
                update={
                    "redis_url": f"redis://127.0.0.1:{port}/0",
                    "pubsub_probe_s": 0.5,
                    "role": "gateway",
                }
            )
        )
        try:
            client = await srv.client(await srv.new_key())
            ack = await client.call(
                "execute", {**ADHOC, "settings": {"max_tokens": 60, "tokens_per_second": 20}}
            )
            task_id = ack["task_id"]
            await until(lambda: bool(client.chunks[task_id]), what="a chunk")
            proxy.silence_subscribers()  # the relay's connection stays open but goes quiet
            done = await client.wait_done(task_id, 40)
            assert done["status"] == "completed"
            assert_intact(client, task_id)
            assert srv.app[RELAY].renewals >= 1
        finally:
            await stop_server(srv)
            await stop_server(worker)
    finally:
        await proxy.close()
        own.stop()


async def test_execute_while_redis_is_down_fails_cleanly(
    settings: Settings, tmp_path: Path
) -> None:
    own = EmbeddedRedis(tmp_path / "redis")
    own.start()
    try:
        srv = await start_server(settings.model_copy(update={"redis_url": own.url}))
        try:
            key = await srv.new_key()
            own.stop()  # the job queue is gone
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{srv.url}/v1/executions",
                    json=ADHOC,
                    headers={"Authorization": f"Bearer {key}"},
                ) as resp:
                    status, body = resp.status, await resp.json()
            assert status == 503 and body["error"]["code"] == "service_unavailable"
            conn = await asyncpg.connect(settings.database_url or "")
            try:
                rows = await conn.fetch("SELECT status, error FROM ai_tasks")
            finally:
                await conn.close()
            # The quota reservation (Redis) comes before the task row: nothing was recorded,
            # so nothing can be left running.
            assert rows == []
        finally:
            own.start()
            await stop_server(srv)
    finally:
        own.stop()


async def test_a_task_recorded_but_never_handed_over_is_ended(settings: Settings) -> None:
    srv = await start_server(settings.model_copy(update={"lease_ttl_s": 1}))
    try:
        client = await srv.client(await srv.new_key())
        conn = await connect(settings.database_url or "")
        try:
            # What a gateway leaves behind when it dies right after recording a task.
            user_id = await conn.fetchval("SELECT id FROM users LIMIT 1")
            orphan = uuid.uuid4()
            await task_rows.create_task(
                conn,
                task_rows.NewTask(
                    task_id=orphan,
                    user_id=user_id,
                    provider="simulated",
                    model="test",
                    request={"model": "simulated/test", "messages": [], "settings": {}},
                ),
            )
            # A task that really runs meanwhile is left alone.
            ack = await client.call(
                "execute", {**ADHOC, "settings": {"max_tokens": 60, "tokens_per_second": 15}}
            )
            for _ in range(600):
                row = await conn.fetchrow(
                    "SELECT status, error FROM ai_tasks WHERE task_id = $1", orphan
                )
                if row["status"] != "running":
                    break
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        assert row["status"] == "failed"
        assert row["error"]["code"] == "internal" and row["error"]["retryable"] is True
        done = await client.wait_done(ack["task_id"], 40)
        assert done["status"] == "completed"
        assert_intact(client, ack["task_id"])
    finally:
        await stop_server(srv)
