"""Idle sockets: real Socket.IO connections (Engine.IO v4 over websocket) that only hold on.

A full python-socketio client per idle socket would make the load generator, not the
server, the limit at 10,000 sockets. These speak the wire protocol directly: the Engine.IO
open packet, a Socket.IO CONNECT with the auth token, and a pong for every ping, which is
all a connected, silent browser tab does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter

import aiohttp

OPEN_TIMEOUT_S = 30.0


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
        ws = await self.session.ws_connect(
            self.url, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5)
        )
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                opened = await ws.receive_str()
                if not opened.startswith("0"):
                    raise ValueError("no Engine.IO open packet")
                await ws.send_str("40" + json.dumps({"token": self.token}))
                while (reply := await ws.receive_str()) == "2":
                    await ws.send_str("3")
                if not reply.startswith("40"):
                    raise ValueError("connection refused")
        except BaseException:
            await ws.close()
            raise
        self.sockets.append(ws)
        task = asyncio.create_task(self._hold(ws))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _hold(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
                await ws.send_str("3")

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
