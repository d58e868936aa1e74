"""Idle sockets: real Socket.IO connections (Engine.IO v4 over websocket) that only hold on.

A full client per idle socket (promptrelay_client, which runs the bench's tasks) would make
the load generator, not the server, the limit at 10,000 sockets. These speak the wire
protocol directly, as a connected, silent browser tab does: a websocket that offers
permessage-deflate, the Engine.IO open packet, a Socket.IO CONNECT with the auth token,
and a pong for every ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter

import aiohttp

OPEN_TIMEOUT_S = 30.0


async def open_socket(
    session: aiohttp.ClientSession, url: str, token: str
) -> aiohttp.ClientWebSocketResponse:
    """A socket connected the way a browser tab connects: a websocket offering
    permessage-deflate, the Engine.IO open packet, a Socket.IO CONNECT with the token
    (pings answered meanwhile). ValueError when the server refuses or closes it first."""
    ws = await session.ws_connect(
        url, compress=15, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5)
    )
    try:
        if not (await ws.receive_str()).startswith("0"):
            raise ValueError("no Engine.IO open packet")
        await ws.send_str("40" + json.dumps({"token": token}))
        while (reply := await ws.receive_str()) == "2":
            await ws.send_str("3")
        if not reply.startswith("40"):
            raise ValueError("refused or closed before the CONNECT was answered")
    except BaseException:
        await ws.close()
        raise
    return ws


async def hold(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Keep a connected socket open: answer every Engine.IO ping, as a quiet tab does."""
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
            await ws.send_str("3")


class IdleSockets:
    """Opens `n` authenticated sockets to `url` and keeps answering their pings."""

    def __init__(self, url: str, token: str) -> None:
        ws_url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        self.url = f"{ws_url.rstrip('/')}/socket.io/?EIO=4&transport=websocket"
        self.token = token
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def open(self, n: int, parallel: int = 100) -> Counter[str]:
        """Connect `n` sockets; returns the count of failures by kind (empty when all held)."""
        failures: Counter[str] = Counter()
        if n <= 0:
            return failures
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        sem = asyncio.Semaphore(parallel)

        async def one() -> None:
            async with sem:
                try:
                    await self._open_one()
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    failures[f"idle_{type(exc).__name__}"] += 1

        await asyncio.gather(*(one() for _ in range(n)))
        return failures

    async def _open_one(self) -> None:
        assert self.session is not None
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            ws = await open_socket(self.session, self.url, self.token)
        self.sockets.append(ws)
        task = asyncio.create_task(hold(ws))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @property
    def held(self) -> int:
        return sum(1 for ws in self.sockets if not ws.closed)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for ws in self.sockets:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await ws.close()
        if self.session is not None:
            await self.session.close()
