"""The running-task cap is exact: a slot lives as long as its task's heartbeat, and
whoever ends the task (runner, sweeper, cancel before start) gives the slot back.

The attack: a user with long streams used to get another 20 slots each time the old fixed
lease (`FIRST_TOKEN_TIMEOUT_S + PROVIDER_TIMEOUT_S`) ran out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engine.cluster.jobs import Leases
from engine.settings import Settings
from tests.conftest import Client, start_server, stop_server
from tests.test_quotas import adhoc, key_for

LONG = adhoc({"max_tokens": 5000, "tokens_per_second": 5})
OLD_LEASE_S = 2.0  # first_token_timeout_s + provider_timeout_s below


def capped(settings: Settings, cap: int, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "max_concurrent_tasks": cap,
            "first_token_timeout_s": 1.0,
            "provider_timeout_s": 1.0,
            "lease_ttl_s": 1.5,
            **extra,
        }
    )


async def refused(client: Client) -> bool:
    ack = await client.call("execute", LONG)
    if ack["ok"]:
        return False
    assert ack["error"]["code"] == "rate_limited", ack
    return True


async def test_long_tasks_keep_their_slots_past_the_old_expiry(settings: Settings) -> None:
    srv = await start_server(capped(settings, 20))
    try:
        client = await srv.client(await key_for(srv.settings, "byok", "long@test"))
        first = [await client.call("execute", LONG) for _ in range(20)]
        assert all(a["ok"] for a in first), first
        admitted_at = time.monotonic()
        tries = 0
        # 20 more, again and again, until well past the old lease: every one is refused.
        while time.monotonic() < admitted_at + OLD_LEASE_S * 2 + 1:
            for _ in range(20):
                assert await refused(client), "a slot was given past the cap"
                tries += 1
            await asyncio.sleep(0.25)
        assert tries >= 100
        assert not any(t in client.done for t in (a["task_id"] for a in first))
        # A cancel gives exactly one slot back.
        await client.call("cancel", {"task_id": first[0]["task_id"]})
        assert not await refused(client)
        assert await refused(client)
    finally:
        await stop_server(srv)


async def test_the_sweeper_frees_the_slot_of_a_task_whose_worker_died(
    settings: Settings,
) -> None:
    # A gateway alone: its task waits in the job stream; a "worker" claims it and dies.
    srv = await start_server(capped(settings, 1, role="gateway", lease_ttl_s=1.0))
    try:
        client = await srv.client(await key_for(srv.settings, "byok", "swept@test"))
        ack = await client.call("execute", LONG)
        assert ack["ok"], ack
        assert await refused(client)
        dead = Leases(srv.engine.redis, srv.engine.keys, "dead-worker", 1.0)
        assert await dead.claim(ack["task_id"])  # never heartbeats
        done = await client.wait_done(ack["task_id"], timeout=20)
        assert done["status"] == "failed" and done["error"]["code"] == "internal"
        again = await client.call("execute", LONG)
        assert again["ok"], again
        # Cancelled before any worker started it: the slot is given back too.
        assert (await client.call("cancel", {"task_id": again["task_id"]}))["ok"]
        assert not await refused(client)
    finally:
        await stop_server(srv)
