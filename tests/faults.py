"""Helpers of the fault tests: an SSE reader that records what a client sees, and a node
with the limits out of the way of 50 concurrent tasks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import Client
from tests.nodes import Cluster, Node, free_port

UNLIMITED = {
    "quota_free_daily": "-1",
    "max_concurrent_tasks": "1000",
    "max_events_per_second": "10000",
    "max_connections_per_user": "1000",  # sockets and SSE streams of one key
}


def adhoc(max_tokens: int, tokens_per_second: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "go"}],
        "model": "simulated/test",
        "settings": {"max_tokens": max_tokens, "tokens_per_second": tokens_per_second},
    }


def spawn_unlimited(cluster: Cluster, role: str, name: str, **extra: str) -> Node:
    return cluster.spawn(role, name, **{**UNLIMITED, **extra})


class SseReader:
    """One `GET /v1/tasks/{id}/stream`, read to its end; events kept as they came."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.chunks: list[dict[str, Any]] = []
        self.done: dict[str, Any] | None = None
        self.done_at: float | None = None  # time.monotonic() of task_done
        self.events: list[str] = []
        self.arrivals: list[float] = []  # time.monotonic() of each task_chunk

    async def read(self, http: aiohttp.ClientSession, base_url: str, token: str) -> None:
        url = f"{base_url}/v1/tasks/{self.task_id}/stream"
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200, await resp.text()
            event = ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: "):
                    self._record(event, json.loads(line[len("data: ") :]))
                    if event == "task_done":
                        return

    def _record(self, event: str, data: dict[str, Any]) -> None:
        self.events.append(event)
        if event == "task_chunk":
            self.chunks.append(data)
            self.arrivals.append(time.monotonic())
        elif event == "task_done":
            self.done = data
            self.done_at = time.monotonic()

    def assert_intact(self) -> dict[str, Any]:
        """Every chunk once, in order, the text whole, and one task_done last."""
        assert self.done is not None, f"no task_done on the SSE stream of {self.task_id}"
        seqs = [c["seq"] for c in self.chunks]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        assert self.done["last_seq"] == len(seqs)
        assert "".join(c["text"] for c in self.chunks) == self.done["text"]
        assert self.events.count("task_done") == 1 and self.events[-1] == "task_done"
        return self.done


async def read_all(readers: list[SseReader], base_url: str, token: str) -> list[asyncio.Task[None]]:
    """Start reading every stream; the caller awaits the tasks (and closes `http`)."""
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    )
    tasks = [asyncio.create_task(r.read(http, base_url, token)) for r in readers]
    closer = asyncio.create_task(_close_after(http, tasks))
    return [*tasks, closer]


async def _close_after(http: aiohttp.ClientSession, tasks: list[asyncio.Task[None]]) -> None:
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await http.close()


def timestamp_chunks(client: Client) -> dict[str, list[float]]:
    """Arrival times (time.monotonic()) of the client's task_chunk events, per task."""
    arrivals: dict[str, list[float]] = {}
    record = client._on_chunk

    async def on_chunk(data: dict[str, Any]) -> None:
        arrivals.setdefault(data["task_id"], []).append(time.monotonic())
        await record(data)

    client.sio.on("task_chunk", on_chunk)
    return arrivals


def resumed_after(arrivals: list[list[float]], back: float) -> float:
    """Seconds from `back` until the slowest subscriber got its first chunk after it."""
    return max(min(t for t in times if t >= back) for times in arrivals) - back


def spawn_serve(data_dir: Path, log_path: Path, **extra: str) -> Node:
    """`promptrelay serve` on its embedded Postgres and Redis under `data_dir`, as the quick
    start runs it; its output goes to `log_path`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY")
    }
    env.update(
        {
            "PROMPTRELAY_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
            **{k.upper(): v for k, v in UNLIMITED.items()},
            **{k.upper(): v for k, v in extra.items()},
        }
    )
    port = free_port()
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).parent.parent,
        )
    return Node("serve", "serve", proc, log_path, port)


def demo_key(node: Node) -> str:
    """The demo user's API key that the first start prints."""
    found = re.search(r"\b(ps_[A-Za-z0-9_-]{20,})", node.log())
    assert found, node.log()
    return found.group(1)


async def execute(node: Node, token: str, body: dict[str, Any]) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{node.url}/v1/executions", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 202, await resp.text()
            return str((await resp.json())["task_id"])


def leftovers(data_dir: Path) -> list[str]:
    """Processes still running from `data_dir` (embedded Postgres or Redis)."""
    found = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(data_dir) in cmdline:
            found.append(f"{proc_dir.name}: {cmdline.strip()}")
    return found


async def stop_quietly(node: Node, data_dir: Path | None = None) -> None:
    """After a failed test: SIGTERM, then SIGKILL; then whatever still runs from
    `data_dir` (a test's own embedded servers) is killed too."""
    if node.proc.poll() is None:
        node.proc.terminate()
        try:
            await node.wait_exit(30)
        except AssertionError:
            node.proc.kill()
            node.proc.wait(10)
    for line in leftovers(data_dir) if data_dir is not None else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
