"""Quotas by tier and the running-task cap, over real Socket.IO clients, real Redis and
Postgres; the race proof runs two server apps on the same database and Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import socketio

from db import users
from db.pool import connect
from engine.accounts.quotas import Period, Quotas
from engine.redis_keys import RedisKeys
from engine.settings import Settings
from tests.conftest import Client, clear_of_midnight, start_server, stop_server
from tests.test_cli import cli

FAST = {"max_tokens": 2, "tokens_per_second": 0}


def adhoc(settings: dict[str, Any] | None = None, text: str = "hi") -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": text}],
        "model": "simulated/q",
        "settings": settings or FAST,
    }


async def key_for(settings: Settings, tier: str, email: str) -> str:
    conn = await connect(settings.database_url or "")
    try:
        user = await users.ensure_user(conn, email, tier)
        return (await users.create_api_key(conn, user.id)).key
    finally:
        await conn.close()


async def run_to_end(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    ack = await client.call("execute", body)
    assert ack["ok"], ack
    return await client.wait_done(ack["task_id"])


async def test_free_tier_daily_quota_then_quota_exceeded(settings: Settings) -> None:
    await clear_of_midnight(settings.quota_utc_offset_min)
    srv = await start_server(settings.model_copy(update={"quota_free_daily": 3}))
    try:
        client = await srv.client(await key_for(srv.settings, "free", "free@test"))
        for _ in range(3):
            assert (await run_to_end(client, adhoc()))["status"] == "completed"
        ack = await client.call("execute", adhoc())
        assert ack["ok"] is False and ack["error"]["code"] == "quota_exceeded", ack
        details = ack["error"]["details"]
        assert details["limit"] == 3 and details["used"] == 3 and details["period"] == "day"
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
        assert (
            details["resets_at"]
            == datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC).isoformat()
        )
        # byok is unlimited by default, premium has its own limit
        byok = await srv.client(await key_for(srv.settings, "byok", "byok@test"))
        for _ in range(5):
            assert (await run_to_end(byok, adhoc()))["status"] == "completed"
        # The counter expires by itself after its day.
        redis = srv.engine.redis
        keys = [
            k
            async for k in redis.scan_iter(RedisKeys(srv.settings.redis_prefix).quota_day("*", "*"))
        ]
        assert len(keys) == 2
        for key in keys:
            ttl = await redis.ttl(key)
            assert 0 < ttl <= 24 * 3600 + 60
    finally:
        await stop_server(srv)


async def test_monthly_quota(settings: Settings) -> None:
    await clear_of_midnight(settings.quota_utc_offset_min)
    srv = await start_server(
        settings.model_copy(update={"quota_premium_daily": -1, "quota_premium_monthly": 2})
    )
    try:
        client = await srv.client(await key_for(srv.settings, "premium", "p@test"))
        for _ in range(2):
            await run_to_end(client, adhoc())
        ack = await client.call("execute", adhoc())
        assert ack["error"]["code"] == "quota_exceeded"
        assert ack["error"]["details"]["period"] == "month"
        assert ack["error"]["details"]["limit"] == 2
    finally:
        await stop_server(srv)


async def test_50_concurrent_executes_at_limit_minus_one_over_two_nodes_admit_one(
    settings: Settings,
) -> None:
    await clear_of_midnight(settings.quota_utc_offset_min)
    limit = 5
    shared = settings.model_copy(update={"quota_free_daily": limit, "max_concurrent_tasks": 1000})
    node_a, node_b = await start_server(shared), await start_server(shared)
    try:
        key = await key_for(shared, "free", "race@test")
        warm = await node_a.client(key)
        for _ in range(limit - 1):
            await run_to_end(warm, adhoc())
        clients = [await (node_a if i % 2 == 0 else node_b).client(key) for i in range(10)]
        acks = await asyncio.gather(
            *(clients[i % 10].call("execute", adhoc(text=f"race {i}")) for i in range(50))
        )
        admitted = [a for a in acks if a["ok"]]
        refused = [a for a in acks if not a["ok"]]
        assert len(admitted) == 1, admitted
        assert {a["error"]["code"] for a in refused} == {"quota_exceeded"}
        assert all(a["error"]["details"]["used"] == limit for a in refused)
        conn = await asyncpg.connect(shared.database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM ai_tasks") == limit
        finally:
            await conn.close()
    finally:
        await stop_server(node_a)
        await stop_server(node_b)


async def connect_client(url: str, key: str) -> Client:
    sio = socketio.AsyncClient(reconnection=False)
    client = Client(sio)
    await sio.connect(url, auth={"token": key}, transports=["websocket"], wait_timeout=10)
    return client


@asynccontextmanager
async def serve_process(settings: Settings, **env: str) -> AsyncIterator[str]:
    """`promptrelay serve` in its own OS process on the test's Postgres and Redis."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        *cli(),
        "serve",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "REDIS_CLUSTER": "1" if settings.redis_cluster else "0",
            "REDIS_PREFIX": settings.redis_prefix,
            "PYTHONUNBUFFERED": "1",
            **env,
        },
    )
    assert proc.stdout is not None
    seen = b""
    try:
        async with asyncio.timeout(60):
            while b"promptrelay listening on" not in seen:
                line = await proc.stdout.readline()
                assert line, f"serve exited:\n{seen.decode()}"
                seen += line
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.communicate()


async def test_50_concurrent_executes_over_two_os_processes_admit_one(settings: Settings) -> None:
    await clear_of_midnight(settings.quota_utc_offset_min)
    limit = 5
    key = await key_for(settings, "free", "procs@test")
    env = {"QUOTA_FREE_DAILY": str(limit), "MAX_CONCURRENT_TASKS": "1000"}
    async with serve_process(settings, **env) as url_a, serve_process(settings, **env) as url_b:
        warm = await connect_client(url_a, key)
        for _ in range(limit - 1):
            await run_to_end(warm, adhoc())
        clients = [await connect_client(url, key) for url in (url_a, url_b) * 5]
        acks = await asyncio.gather(
            *(clients[i % 10].call("execute", adhoc(text=f"proc race {i}")) for i in range(50))
        )
        for client in [warm, *clients]:
            await client.sio.disconnect()
    assert len([a for a in acks if a["ok"]]) == 1, acks
    assert {a["error"]["code"] for a in acks if not a["ok"]} == {"quota_exceeded"}


async def test_task_failing_before_first_token_gives_its_unit_back(settings: Settings) -> None:
    await clear_of_midnight(settings.quota_utc_offset_min)
    srv = await start_server(
        settings.model_copy(update={"quota_free_daily": 1, "first_token_timeout_s": 0.3})
    )
    try:
        client = await srv.client(await key_for(srv.settings, "free", "refund@test"))
        slow = adhoc({"max_tokens": 2, "tokens_per_second": 0.5})  # first token after 2 s
        done = await run_to_end(client, slow)
        assert done["status"] == "failed" and done["error"]["code"] == "timeout"
        # the unit came back: one more task runs, and then the quota is used up
        assert (await run_to_end(client, adhoc()))["status"] == "completed"
        ack = await client.call("execute", adhoc())
        assert ack["error"]["code"] == "quota_exceeded"
    finally:
        await stop_server(srv)


async def test_cancelled_after_tokens_keeps_its_unit(settings: Settings) -> None:
    await clear_of_midnight(settings.quota_utc_offset_min)
    srv = await start_server(settings.model_copy(update={"quota_free_daily": 1}))
    try:
        client = await srv.client(await key_for(srv.settings, "free", "keep@test"))
        ack = await client.call("execute", adhoc({"max_tokens": 500, "tokens_per_second": 50}))
        await client.wait_chunks(ack["task_id"])
        assert (await client.call("cancel", {"task_id": ack["task_id"]}))["ok"]
        again = await client.call("execute", adhoc())
        assert again["error"]["code"] == "quota_exceeded"
    finally:
        await stop_server(srv)


async def test_running_task_cap_answers_rate_limited_then_frees(settings: Settings) -> None:
    srv = await start_server(settings.model_copy(update={"max_concurrent_tasks": 2}))
    try:
        client = await srv.client(await key_for(srv.settings, "free", "cap@test"))
        slow = adhoc({"max_tokens": 1000, "tokens_per_second": 20})
        first = [await client.call("execute", slow) for _ in range(2)]
        assert all(a["ok"] for a in first)
        capped = await client.call("execute", slow)
        assert capped["ok"] is False and capped["error"]["code"] == "rate_limited"
        assert capped["error"]["details"]["retry_after_ms"] > 0
        # another user is not affected
        other = await srv.client(await key_for(srv.settings, "free", "other@test"))
        assert (await other.call("execute", adhoc()))["ok"]
        await client.call("cancel", {"task_id": first[0]["task_id"]})
        assert (await client.call("execute", adhoc()))["ok"]
        await client.call("cancel", {"task_id": first[1]["task_id"]})
    finally:
        await stop_server(srv)


@pytest.mark.parametrize(
    ("now", "offset", "day", "ends"),
    [
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), 0, "2026-12-31", "2027-01-01T00:00:00+00:00"),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), 60, "2027-01-01", "2027-01-01T23:00:00+00:00"),
        (datetime(2026, 3, 1, 2, 0, tzinfo=UTC), -300, "2026-02-28", "2026-03-01T05:00:00+00:00"),
    ],
)
def test_quota_period(now: datetime, offset: int, day: str, ends: str) -> None:
    period = Period.at(now, offset)
    assert period.day.isoformat() == day
    assert period.day_ends.isoformat() == ends
    assert period.day_ends > now
    assert period.month_ends >= period.day_ends


async def test_request_id_is_claimed_with_the_unit_in_one_script(settings: Settings) -> None:
    """Duplicates racing on one request_id take one unit between them; a request the quota
    refuses leaves its request_id free for the retry once a unit is there again."""
    await clear_of_midnight(settings.quota_utc_offset_min)
    srv = await start_server(settings.model_copy(update={"quota_free_daily": 2}))
    try:
        conn = await connect(srv.settings.database_url or "")
        try:
            user = await users.ensure_user(conn, "idem@test", "free")
            key = (await users.create_api_key(conn, user.id)).key
        finally:
            await conn.close()
        client = await srv.client(key)
        body = {**adhoc(), "request_id": "same"}
        acks = await asyncio.gather(*(client.call("execute", body) for _ in range(8)))
        assert all(a["ok"] for a in acks) and len({a["task_id"] for a in acks}) == 1
        await client.wait_done(acks[0]["task_id"])
        assert (await srv.engine.quotas.usage(user.id))["tasks_today"] == 1
        assert (await run_to_end(client, adhoc()))["status"] == "completed"  # the 2nd unit
        refused = await client.call("execute", {**adhoc(), "request_id": "later"})
        assert refused["error"]["code"] == "quota_exceeded"
        names = RedisKeys(srv.settings.redis_prefix)
        redis = srv.engine.redis
        assert await redis.exists(names.idempotency(user.id, "later")) == 0  # not claimed
        today = Period.at(datetime.now(UTC), srv.settings.quota_utc_offset_min).day
        await redis.delete(names.quota_day(user.id, today))  # a new day
        again = await client.call("execute", {**adhoc(), "request_id": "later"})
        assert again["ok"], again
        assert (await client.wait_done(again["task_id"]))["status"] == "completed"
    finally:
        await stop_server(srv)


def test_the_period_kept_between_executes_turns_with_the_day(settings: Settings) -> None:
    quotas = Quotas(aioredis.Redis(), RedisKeys("t:"), settings)
    before = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    for now in (before, before + timedelta(seconds=2), before - timedelta(days=3)):
        assert quotas._period(now) == Period.at(now, settings.quota_utc_offset_min)
