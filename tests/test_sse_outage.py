"""An SSE stream opened while Redis is away (longer than a subscribe waits for it) still
ends: with its records and `task_done` once Redis is back, or with the task's end read
from Postgres, or with a clear error to retry, within a bounded time; never a hang."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from server.process.embedded import EmbeddedRedis
from tests.conftest import Infra
from tests.faults import SseReader, adhoc, read_all, spawn_unlimited
from tests.nodes import Cluster

DOWN_S = 20.0  # twice as long as a subscribe waits for Redis
STREAMS = 3
BOUND_S = 30.0  # every stream has ended this soon after Redis is back


@pytest.mark.timeout(240)
async def test_sse_opened_during_a_long_redis_outage_ends(
    infra: Infra, database_url: str, tmp_path: Path
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", persistence="aof")
    redis.start()
    cluster = Cluster(database_url, redis.url, tmp_path)
    try:
        node = spawn_unlimited(cluster, "serve", "n1", lease_ttl_s="15")
        await node.wait_ready()
        token = await cluster.new_key()
        client = await cluster.client(node, token)
        acks = [await client.call("execute", adhoc(40, 10)) for _ in range(STREAMS)]
        assert all(a["ok"] for a in acks), acks
        redis.kill()
        await asyncio.sleep(1.0)
        readers = [SseReader(a["task_id"]) for a in acks]
        streams = await read_all(readers, node.url, token)  # opened while Redis is away
        await asyncio.sleep(DOWN_S)
        redis.start()
        back = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(*streams, return_exceptions=True), BOUND_S)
        except TimeoutError:
            stuck = [(r.task_id, r.events[-3:]) for r in readers]
            raise AssertionError(f"SSE streams still open: {stuck}\n{node.log()[-4000:]}") from None
        for reader in readers:
            last = reader.events[-1] if reader.events else None
            assert last in ("task_done", "error"), (reader.task_id, reader.events[-5:])
            if last == "task_done":
                assert reader.assert_intact()["status"] == "completed"
        print(f"every stream ended {time.monotonic() - back:.1f} s after Redis was back")
    finally:
        await cluster.stop()
        redis.stop()


@pytest.mark.timeout(120)
async def test_the_connection_cap_holds_per_node_while_redis_is_away(
    infra: Infra, database_url: str, tmp_path: Path
) -> None:
    """Redis away: the per-user cap cannot be counted over the deployment, so each node
    counts its own connections of the user; one user cannot open streams without bound."""
    redis = EmbeddedRedis(tmp_path / "redis", persistence="aof")
    redis.start()
    cluster = Cluster(database_url, redis.url, tmp_path)
    try:
        node = cluster.spawn("serve", "capped", max_connections_per_user="3")
        await node.wait_ready()
        token = await cluster.new_key()
        client = await cluster.client(node, token)  # one connection of the user
        ack = await client.call("execute", adhoc(400, 10))
        assert ack["ok"], ack
        redis.kill()
        await asyncio.sleep(1.0)
        statuses = []
        async with aiohttp.ClientSession() as http:
            opened = []
            for _ in range(4):
                resp = await http.get(
                    f"{node.url}/v1/tasks/{ack['task_id']}/stream",
                    headers={"Authorization": f"Bearer {token}"},
                )
                statuses.append(resp.status)
                opened.append(resp)
            for resp in opened:
                resp.close()
        # the socket and two streams make three; the two streams after them are refused
        assert statuses == [200, 200, 429, 429], statuses
    finally:
        await cluster.stop()
        redis.stop()
