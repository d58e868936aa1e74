"""Many tasks over many sockets at once: every stream intact, every row consistent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg

from tests.conftest import Server, assert_intact


async def test_200_tasks_over_20_sockets(server: Server) -> None:
    key = await server.new_key()
    clients = [await server.client(key) for _ in range(20)]

    async def one(i: int) -> tuple[int, str]:
        client = clients[i % 20]
        ack = await client.call(
            "execute",
            {
                "messages": [{"role": "user", "content": f"task number {i}"}],
                "model": "simulated/load",
                "settings": {"max_tokens": 32, "tokens_per_second": 400},
            },
        )
        assert ack["ok"], ack
        await client.wait_done(ack["task_id"], timeout=60)
        return i % 20, ack["task_id"]

    results = await asyncio.gather(*(one(i) for i in range(200)))
    run_ids = set()
    for client_index, task_id in results:
        done = assert_intact(clients[client_index], task_id)
        assert done["status"] == "completed"
        assert len(done["text"].split()) == 32
        run_ids.add(done["run_id"])
    assert len(run_ids) == 200
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT t.status, t.total_tokens AS task_tokens, r.total_tokens AS run_tokens,"
            " t.cost_usd, r.total_cost_usd, r.task_count FROM ai_tasks t"
            " JOIN ai_runs r ON r.id = t.run_id"
        )
        usage = await conn.fetchval("SELECT count(*) FROM ai_usage_logs")
    finally:
        await conn.close()
    assert len(rows) == 200 and usage == 200
    for row in rows:
        assert row["status"] == "completed"
        assert row["task_tokens"] == row["run_tokens"] and row["task_count"] == 1
        assert row["cost_usd"] == row["total_cost_usd"] == Decimal(0)
    assert len({task_id for _, task_id in results}) == 200
