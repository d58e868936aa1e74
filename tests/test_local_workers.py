"""`promptrelay serve` with local workers (LOCAL_WORKERS): tasks run in worker processes it
starts, a crashed worker is replaced, and stopping serve leaves no worker behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from engine.settings import Settings
from server.process.local_workers import worker_count
from tests.faults import (
    SseReader,
    adhoc,
    demo_key,
    execute,
    leftovers,
    read_all,
    spawn_serve,
    stop_quietly,
)
from tests.nodes import Node, until
from tests.test_shutdown import PROMPT_EXIT_S


def _workers_of(pid: int) -> dict[int, int]:
    """{pid: health port} of the local worker processes whose parent is `pid`."""
    found = {}
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            stat = (proc_dir / "stat").read_text()
            cmdline = (proc_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        args = [a.decode() for a in cmdline if a]
        if ppid == pid and "worker" in args and "--parent-pid" in args:
            found[int(proc_dir.name)] = int(args[args.index("--port") + 1])
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _completed_here(port: int) -> float:
    """Simulated tasks this node ended `completed`, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    pattern = r'promptrelay_tasks_total\{[^}]*status="completed"[^}]*\} ([0-9.e+]+)'
    return sum(float(v) for v in re.findall(pattern, text))


def _task_status(node: Node, token: str, task_id: str) -> str:
    req = urllib.request.Request(
        f"{node.url}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read().decode()
    found = re.search(r'"status":\s*"([a-z_]+)"', body)
    assert found, body
    return found.group(1)


@pytest.mark.timeout(300)
async def test_serve_runs_tasks_in_its_workers_and_leaves_none_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    node = spawn_serve(data_dir, tmp_path / "serve.log", local_workers="2")
    workers: dict[int, int] = {}
    try:
        await node.wait_ready()
        workers = _workers_of(node.proc.pid)
        assert len(workers) == 2, node.log()
        token = demo_key(node)
        task_id = await execute(node, token, adhoc(max_tokens=20, tokens_per_second=200))
        await until(lambda: _task_status(node, token, task_id) == "completed", 60, "the task")
        assert sum(_completed_here(port) for port in workers.values()) == 1
        assert _completed_here(node.port) == 0  # the gateway only relayed it

        crashed = next(iter(workers))
        os.kill(crashed, signal.SIGKILL)
        await until(
            lambda: len(set(_workers_of(node.proc.pid)) - {crashed}) == 2, 60, "a new worker"
        )
        workers = _workers_of(node.proc.pid)
        task_id = await execute(node, token, adhoc(max_tokens=20, tokens_per_second=200))
        await until(lambda: _task_status(node, token, task_id) == "completed", 60, "the task")

        node.proc.send_signal(signal.SIGINT)
        assert await node.wait_exit(90) == 0, node.log()
        assert [pid for pid in workers if _alive(pid)] == [], node.log()
        assert leftovers(data_dir) == [], node.log()
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        await stop_quietly(node, data_dir)


@pytest.mark.timeout(300)
async def test_workers_stop_by_themselves_when_serve_is_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    node = spawn_serve(data_dir, tmp_path / "serve.log", local_workers="1")
    workers: dict[int, int] = {}
    try:
        await node.wait_ready()
        workers = _workers_of(node.proc.pid)
        assert len(workers) == 1, node.log()
        node.kill()  # SIGKILL: serve cannot stop them; they notice it is gone
        await until(lambda: not any(_alive(pid) for pid in workers), 60, "the workers to stop")
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        await stop_quietly(node, data_dir)


def test_minus_one_means_one_worker_per_usable_core() -> None:
    assert worker_count(Settings(local_workers=-1)) == len(os.sched_getaffinity(0))
    assert worker_count(Settings(local_workers=3)) == 3
    assert worker_count(Settings()) == 0  # the default: one process does everything


@pytest.mark.timeout(240)
async def test_one_stop_signal_gives_the_workers_tasks_their_grace(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    node = spawn_serve(data_dir, tmp_path / "serve.log", local_workers="1", shutdown_grace_s="3")
    try:
        await node.wait_ready()
        token = demo_key(node)
        task_id = await execute(node, token, adhoc(30_000, 20))
        reader = SseReader(task_id)
        (stream, closer) = await read_all([reader], node.url, token)
        await until(lambda: bool(reader.chunks), what="a chunk")
        started = time.monotonic()
        node.proc.send_signal(signal.SIGINT)  # once: the worker drains, it is not hurried
        assert await node.wait_exit(60) == 0, node.log()
        busy_s = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(stream, closer), 10)
    finally:
        await stop_quietly(node, data_dir)
    assert 3 <= busy_s < 3 + PROMPT_EXIT_S, node.log()  # the grace, then the task ended
    assert reader.assert_intact()["status"] == "failed"  # with its partial text, delivered
    assert leftovers(data_dir) == []
