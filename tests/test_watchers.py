"""The cap on subscriptions to one task on a node: past it a subscribe (socket or SSE) is
refused rate_limited and the streams already there go on whole."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from engine.settings import Settings
from tests.conftest import Server, assert_intact, start_server, stop_server

CAP = 3


@pytest_asyncio.fixture
async def capped(settings: Settings) -> AsyncIterator[Server]:
    srv = await start_server(settings.model_copy(update={"max_watchers_per_task": CAP}))
    try:
        yield srv
    finally:
        await stop_server(srv)


async def test_watchers_past_the_cap_are_refused(
    capped: Server, http: aiohttp.ClientSession
) -> None:
    key = await capped.new_key()
    owner = await capped.client(key)
    ack = await owner.call(
        "execute",
        {
            "messages": [{"role": "user", "content": "watch me"}],
            "model": "simulated/w",
            "settings": {"max_tokens": 60, "tokens_per_second": 30},
        },
    )
    assert ack["ok"], ack
    task_id = ack["task_id"]
    watchers = [await capped.client(key) for _ in range(CAP)]
    acks = [await w.call("subscribe", {"task_id": task_id, "after_seq": 0}) for w in watchers]
    assert [a["ok"] for a in acks[: CAP - 1]] == [True] * (CAP - 1)  # the owner is the first
    refused = acks[CAP - 1]
    assert not refused["ok"] and refused["error"]["code"] == "rate_limited", refused
    assert refused["error"]["details"]["limit"] == "watchers_per_task"
    # the same socket subscribing again replaces its subscription: allowed at the cap
    again = await watchers[0].call("subscribe", {"task_id": task_id, "after_seq": 0})
    assert again["ok"], again
    async with http.get(
        f"{capped.url}/v1/tasks/{task_id}/stream", headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        assert resp.status == 429
        assert (await resp.json())["error"]["code"] == "rate_limited"
    await owner.wait_done(task_id)
    assert assert_intact(owner, task_id)["status"] == "completed"
    await watchers[0].wait_done(task_id)
    # once the task ended its watchers are gone: a late subscribe is served from history
    late = await watchers[CAP - 1].call("subscribe", {"task_id": task_id, "after_seq": 0})
    assert late["ok"] and late["status"] == "completed", late
