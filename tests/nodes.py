"""Gateway and worker nodes as real subprocesses (`python -m server.cli ROLE`) against the
tests' Postgres and Redis, and Socket.IO clients connected to them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import socketio

from db import users
from db.pool import connect
from engine.redis_keys import RedisKeys
from tests.conftest import Client

STARTUP_S = 90.0  # a loaded 2-core machine imports slowly


async def until(predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    """Wait for a condition (no timing assertion: the timeout only bounds a failure)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    role: str
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while "listening on" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{self.log()}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not exit:\n{self.log()}")
            await asyncio.sleep(0.1)
        return self.proc.returncode


@dataclass
class Cluster:
    """Nodes sharing one database and one Redis key prefix."""

    database_url: str
    redis_url: str
    tmp: Path
    prefix: str = field(default_factory=lambda: f"c{uuid.uuid4().hex[:8]}:")
    nodes: list[Node] = field(default_factory=list)
    clients: list[socketio.AsyncClient] = field(default_factory=list)
    redis: aioredis.Redis | None = None
    redis_cluster: bool = False  # REDIS_URL names a node of a Redis Cluster

    def env(self, name: str, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY",)}
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "REDIS_CLUSTER": "1" if self.redis_cluster else "0",
                "REDIS_PREFIX": self.prefix,
                "NODE_ID": name,
                "LOG_LEVEL": "WARNING",
                "COALESCE_MS": "10",
                "DB_POOL_MIN": "1",
                "DB_POOL_MAX": "4",
                "PING_INTERVAL_S": "1",
                "PING_TIMEOUT_S": "2",
                "LEASE_TTL_S": "3",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env

    def spawn(self, role: str, name: str, **extra: str) -> Node:
        """Start a node; `await node.wait_ready()` (or `ready`) before using it."""
        port = free_port()
        log_path = self.tmp / f"{name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", role, "--port", str(port)],
                env=self.env(name, {k.upper(): v for k, v in extra.items()}),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=Path(__file__).parent.parent,
            )
        node = Node(role, name, proc, log_path, port)
        self.nodes.append(node)
        return node

    async def start(self, *specs: tuple[str, str]) -> list[Node]:
        """Start several nodes at once and wait until all listen."""
        nodes = [self.spawn(role, name) for role, name in specs]
        await asyncio.gather(*(n.wait_ready() for n in nodes))
        return nodes

    async def new_key(self) -> str:
        conn = await connect(self.database_url)
        try:
            user = await users.ensure_user(conn, f"{uuid.uuid4().hex[:8]}@test")
            return (await users.create_api_key(conn, user.id)).key
        finally:
            await conn.close()

    async def client(self, node: Node, token: str, *, runs_changed: bool = False) -> Client:
        sio = socketio.AsyncClient(reconnection=False)
        client = Client(sio)
        auth: dict[str, Any] = {"token": token}
        if runs_changed:
            auth["runs_changed"] = True
        await sio.connect(node.url, auth=auth, transports=["websocket"], wait_timeout=20)
        self.clients.append(sio)
        return client

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.prefix)

    async def stop(self) -> None:
        for sio in self.clients:
            if sio.connected:
                await sio.disconnect()
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGKILL)
                node.proc.wait(30)
        if self.redis is not None:
            await self.redis.aclose()


class Blackhole:
    """A TCP proxy on loopback in front of a unix-socket Redis. `silence_subscribers()`
    makes every connection that has subscribed so far stop delivering anything to its
    client while staying open: a half-open connection, as a NAT that forgot it leaves."""

    def __init__(self, unix_path: Path) -> None:
        self.unix_path = unix_path
        self._silent: dict[int, bool] = {}
        self._subscribed: set[int] = set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def silence_subscribers(self) -> None:
        for conn in self._subscribed:
            self._silent[conn] = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(str(self.unix_path))
        conn = id(writer)
        self._silent[conn] = False

        async def upstream() -> None:
            while data := await reader.read(65536):
                if b"SUBSCRIBE" in data.upper():
                    self._subscribed.add(conn)
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if not self._silent[conn]:
                    writer.write(data)
                    await writer.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._pumps.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._pumps.difference_update(pumps)
            writer.close()
            up_writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
