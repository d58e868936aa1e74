"""Output is bounded: a ceiling on `max_tokens` server-wide and per tier, a cap on the
characters one task streams (and so on its history in Redis), and the embedded Redis runs
with a memory limit whose eviction takes finished histories before live task data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from engine.settings import Settings
from server.process.embedded import EmbeddedRedis
from tests.conftest import Server, start_server, stop_server
from tests.test_quotas import adhoc, key_for


async def refusal(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    ack = await client.call("execute", body)
    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == "invalid_request"
    details: dict[str, Any] = ack["error"]["details"]
    return details


async def test_max_tokens_has_a_server_and_a_tier_ceiling(server: Server) -> None:
    free = await server.client(await key_for(server.settings, "free", "f@test"))
    byok = await server.client(await key_for(server.settings, "byok", "b@test"))
    big = adhoc({"max_tokens": 9000, "tokens_per_second": 1})
    details = await refusal(free, big)
    assert details["limit"] == "max_tokens" and details["max"] == 8192
    ack = await byok.call("execute", big)
    assert ack["ok"], ack
    await byok.call("cancel", {"task_id": ack["task_id"]})
    # The attack of a byok user: a simulated task of a million tokens.
    huge = adhoc({"max_tokens": 1_000_000, "tokens_per_second": 0})
    assert (await refusal(byok, huge))["max"] == 32768
    # A prompt's saved settings or the request's: the merged value is checked.
    assert (await refusal(free, adhoc({"max_tokens": 8193})))["limit"] == "max_tokens"


async def test_a_tasks_output_and_history_are_capped(settings: Settings) -> None:
    srv = await start_server(settings.model_copy(update={"max_output_chars": 2000}))
    try:
        client = await srv.client(await key_for(srv.settings, "byok", "long@test"))
        ack = await client.call("execute", adhoc({"max_tokens": 30000, "tokens_per_second": 0}))
        assert ack["ok"], ack
        done = await client.wait_done(ack["task_id"], timeout=60)
        assert done["status"] == "completed" and done["finish_reason"] == "length"
        assert 2000 <= len(done["text"]) < 2000 + 32 * 10  # one delta past the cap at most
        history = srv.engine.keys.history(ack["task_id"])
        used = await srv.engine.redis.memory_usage(history)
        assert used is not None and used < 64 * 1024, used
    finally:
        await stop_server(srv)


async def test_embedded_redis_evicts_finished_histories_first(tmp_path: Path) -> None:
    own = EmbeddedRedis(tmp_path / "redis", maxmemory_mb=16)
    own.start()
    client = aioredis.Redis.from_url(own.url)
    try:
        config = await client.config_get("maxmemory*")
        assert config["maxmemory"] == str(16 * 2**20)
        assert config["maxmemory-policy"] == "volatile-ttl"
        # Live task data: a running history (a day's TTL), a lease set (no TTL).
        await client.set("live:history", "x" * 100_000, ex=86400)
        await client.zadd("leases", {"task": 1.0})
        for i in range(400):  # 40 MB of finished histories (HISTORY_TTL_S) into 16 MB
            await client.set(f"done:{i}", "y" * 100_000, ex=3600)
        assert await client.exists("live:history", "leases") == 2
        assert await client.dbsize() < 200
    finally:
        await client.aclose()
        own.stop()
