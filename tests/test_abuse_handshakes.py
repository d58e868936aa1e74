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


async def test_a_flood_from_many_addresses_does_not_lock_out_a_real_client(
    cluster: Cluster,
) -> None:
    """Handshakes from several addresses, each under its own cap, fill the node's total;
    a client that authenticates still gets in while the flood goes on (the oldest pending
    sessions make room), and no handshake is refused for the total alone."""
    node = cluster.spawn(
        "serve",
        "many-addresses",
        max_pending_handshakes_per_address="40",
        max_pending_handshakes="100",
        handshake_deadline_s="10",
        log_level="INFO",
    )
    await node.wait_ready()
    key = await cluster.new_key()
    seen: Counter[int] = Counter()
    stop = asyncio.Event()

    async def flood_from(address: str) -> None:
        connector = aiohttp.TCPConnector(limit=8, local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector) as http:

            async def worker() -> None:
                while not stop.is_set():
                    await handshake(http, node.url, seen)

            await asyncio.gather(*(worker() for _ in range(8)))

    flooders = [asyncio.create_task(flood_from(f"127.0.0.{n}")) for n in range(2, 10)]
    try:
        deadline = time.monotonic() + 20
        while seen[200] < 400:  # four times the node's total, admitted from 8 addresses
            assert time.monotonic() < deadline, seen
            await asyncio.sleep(0.05)
        for _ in range(3):  # the flood still runs: a real client gets in, each time
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
            await client.sio.disconnect()
    finally:
        stop.set()
        await asyncio.gather(*flooders, return_exceptions=True)
    # Eight addresses of at most 40 each: over the total, never over an address's cap.
    assert seen[200] >= 400, seen
    assert "Traceback" not in node.log()
