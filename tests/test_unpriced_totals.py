"""Totals over tasks whose model has no known price: a run's and `GET /v1/usage`'s cost is
`null` when none of their tasks was priced (never a silent "0"), and each carries the number
of unpriced tasks it left out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from engine.settings import Settings
from tests.conftest import Server
from tests.provider_env import fakes, provider_server


@pytest_asyncio.fixture
async def srv(settings: Settings) -> AsyncIterator[Server]:
    async with fakes() as f, provider_server(settings, f) as server:
        yield server


async def _get(server: Server, key: str, path: str) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(server.url, headers=headers) as http:
        async with http.get(path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def test_totals_over_unpriced_tasks_are_null_with_a_count(srv: Server) -> None:
    key = await srv.new_key()
    client = await srv.client(key)
    run_id = None
    for n in range(2):
        payload: dict[str, Any] = {
            "model": "openai/my-local-llm",
            "messages": [{"role": "user", "content": f"question {n}"}],
        }
        if run_id:
            payload["run_id"] = run_id
        ack = await client.call("execute", payload)
        assert ack["ok"], ack
        run_id = ack["run_id"]
        done = await client.wait_done(ack["task_id"])
        assert done["cost_usd"] is None

    run = await _get(srv, key, f"/v1/runs/{run_id}")
    assert (run["cost_usd"], run["unpriced_tasks"]) == (None, 2)
    listed = (await _get(srv, key, "/v1/runs"))["items"]
    assert [(r["cost_usd"], r["unpriced_tasks"]) for r in listed] == [(None, 2)]
    usage = (await _get(srv, key, "/v1/usage"))["items"]
    assert [(u["tasks"], u["cost_usd"], u["unpriced_tasks"]) for u in usage] == [(2, None, 2)]

    priced = {"model": "simulated/x", "messages": [{"role": "user", "content": "q"}]}
    ack = await client.call("execute", priced | {"run_id": run_id})
    await client.wait_done(ack["task_id"])
    run = await _get(srv, key, f"/v1/runs/{run_id}")
    assert (run["cost_usd"], run["unpriced_tasks"], run["task_count"]) == ("0", 2, 3)
