"""A flood of Engine.IO handshakes that never send a Socket.IO CONNECT: capped per address
and in total, closed after a deadline, and the server's memory stays flat.

The server runs as its own process (`promptrelay serve`), so its RSS is measured alone."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
import pytest_asyncio
import redis.asyncio as aioredis

from tests.conftest import Infra
from tests.nodes import Cluster, Node

FLOOD = 10_000
PER_ADDRESS = 50
DEADLINE_S = 2.0
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


@pytest_asyncio.fixture
async def cluster(infra: Infra, database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    nodes = Cluster(database_url, infra.redis_url, tmp_path)
    nodes.redis = aioredis.Redis.from_url(infra.redis_url)
    try:
        yield nodes
    finally:
        await nodes.stop()


def rss_mb(node: Node) -> float:
    return float(psutil.Process(node.proc.pid).memory_info().rss) / 2**20


async def handshake(http: aiohttp.ClientSession, url: str, seen: Counter[int]) -> str | None:
    """One Engine.IO handshake (polling); the session id when it was admitted."""
    async with http.get(url + HANDSHAKE) as resp:
        seen[resp.status] += 1
        body = await resp.read()
        if resp.status == 429:
            assert resp.headers["Retry-After"].isdigit()
            assert json.loads(body)["error"]["code"] == "rate_limited"
            assert b"Traceback" not in body
            return None
        assert resp.status == 200, body
        opened = json.loads(body[body.index(b"{") :])  # the OPEN packet: 0{...}
        return str(opened["sid"])


async def session_gone(http: aiohttp.ClientSession, url: str, sid: str) -> bool:
    """A poll of a live session waits for packets; of a closed one it is refused at once."""
    try:
        async with http.get(
            f"{url}{HANDSHAKE}&sid={sid}", timeout=aiohttp.ClientTimeout(total=0.5)
        ) as resp:
            return resp.status == 400
    except TimeoutError:
        return False


async def flood(
    http: aiohttp.ClientSession, url: str, count: int
) -> tuple[Counter[int], list[str]]:
    seen: Counter[int] = Counter()
    sids: list[str] = []
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            sid = await handshake(http, url, seen)
            if sid:
                sids.append(sid)

    await asyncio.gather(*(worker() for _ in range(32)))
    return seen, sids


async def test_a_handshake_flood_is_capped_closed_and_keeps_memory_flat(
    cluster: Cluster,
) -> None:
    node = cluster.spawn(
        "serve",
        "flooded",
        max_pending_handshakes_per_address=str(PER_ADDRESS),
        max_pending_handshakes=str(PER_ADDRESS * 2),
        handshake_deadline_s=str(DEADLINE_S),
        ping_interval_s="25",
        ping_timeout_s="20",
        log_level="INFO",
    )
    await node.wait_ready()
    key = await cluster.new_key()
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as http:
        _, warm = await flood(http, node.url, 500)  # warm up allocators and caches
        before = rss_mb(node)
        started = time.monotonic()
        seen, sids = await flood(http, node.url, FLOOD)
        took = time.monotonic() - started
        after = rss_mb(node)
        # Admitted at most one cap's worth per deadline period (plus one), the rest refused.
        assert seen[200] <= PER_ADDRESS * (took / DEADLINE_S + 2), (seen, took)
        assert seen[429] >= FLOOD - seen[200] and seen[200] + seen[429] == FLOOD
        assert after - before < 25, f"RSS {before:.0f} -> {after:.0f} MB over {FLOOD}"
        # Past the deadline, the last admitted pending sessions are gone...
        last = (warm + sids)[-1]
        deadline = time.monotonic() + DEADLINE_S * 5
        while not await session_gone(http, node.url, last):
            assert time.monotonic() < deadline, "a pending session outlived its deadline"
        # ...and a real client that authenticates is admitted and served.
        client = await cluster.client(node, key)
        ack = await client.call(
            "execute",
            {
                "messages": [{"role": "user", "content": "hi"}],
                "model": "simulated/x",
                "settings": {"max_tokens": 2, "tokens_per_second": 0},
            },
        )
        assert ack["ok"], ack
        assert (await client.wait_done(ack["task_id"]))["status"] == "completed"
    print(
        f"handshake flood: {FLOOD} in {took:.1f} s, {dict(seen)}, RSS {before:.0f}->{after:.0f} MB"
    )
    assert "Traceback" not in node.log()
