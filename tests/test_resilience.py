"""Bounded waits and outages of the servers the node depends on, on real Postgres/Redis."""

from __future__ import annotations

import uuid

import aiohttp

from engine.settings import Settings
from server.state import POOL
from tests.conftest import start_server, stop_server

ADHOC = {"messages": [{"role": "user", "content": "hi"}], "model": "simulated/test",
         "settings": {"max_tokens": 5, "tokens_per_second": 0}}


async def test_waiting_for_a_database_connection_is_bounded(settings: Settings) -> None:
    srv = await start_server(settings.model_copy(update={
        "db_pool_min": 1, "db_pool_max": 1, "db_acquire_timeout_s": 0.5}))
    try:
        key = await srv.new_key()
        client = await srv.client(key)
        async with srv.app[POOL].acquire():  # the only connection is busy
            ack = await client.call("execute", ADHOC)
            assert ack["ok"] is False
            assert ack["error"]["code"] == "provider_unavailable"
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{srv.url}/v1/tasks/{uuid.uuid4()}",
                                    headers={"Authorization": f"Bearer {key}"}) as resp:
                    assert resp.status == 503
                    body = await resp.json()
            assert body["error"]["code"] == "provider_unavailable"
        ack = await client.call("execute", ADHOC)  # free again: served
        assert ack["ok"] is True
        assert (await client.wait_done(ack["task_id"]))["status"] == "completed"
    finally:
        await stop_server(srv)
