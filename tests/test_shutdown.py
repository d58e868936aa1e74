"""Ctrl-C and SIGTERM for real on `promptrelay serve` with its embedded Postgres and
Redis: each signal handled once, a second one ends running tasks at once (failed, with
their partial text, finalized, `task_done` sent), the process exits promptly, and no
embedded server is left running."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
import socketio

from server.process.embedded import EmbeddedPostgres
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

PROMPT_EXIT_S = 10.0  # bound of the exit after the second signal (measured: see docs/deploy.md)


async def _rows(data_dir: Path, task_ids: list[str]) -> list[asyncpg.Record]:
    """The tasks' rows, read from the stopped node's Postgres started again for the check."""
    pg = EmbeddedPostgres(data_dir / "pg")
    url = pg.start()
    try:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(
                "SELECT status, response_text, error FROM ai_tasks"
                " WHERE task_id = ANY($1::uuid[]) ORDER BY task_id",
                [uuid.UUID(t) for t in task_ids],
            )
        finally:
            await conn.close()
    finally:
        pg.stop()


async def _exit_after(node: Node, sig: int, timeout: float = 60) -> float:
    started = time.monotonic()
    node.proc.send_signal(sig)
    assert await node.wait_exit(timeout) == 0, node.log()
    return time.monotonic() - started


@pytest.mark.timeout(240)
async def test_second_sigint_during_the_grace_ends_tasks_and_exits_promptly(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    node = spawn_serve(data_dir, tmp_path / "serve.log", shutdown_grace_s="120")
    try:
        await node.wait_ready()
        token = demo_key(node)
        task_ids = [await execute(node, token, adhoc(30_000, 20)) for _ in range(3)]
        readers = [SseReader(t) for t in task_ids]
        streams = await read_all(readers, node.url, token)
        await until(lambda: all(r.chunks for r in readers), what="a chunk on every stream")

        node.proc.send_signal(signal.SIGINT)
        await until(lambda: "draining" in node.log(), what="the grace period")
        exit_s = await _exit_after(node, signal.SIGINT, 60)
        await asyncio.wait_for(asyncio.gather(*streams), 10)
    finally:
        await stop_quietly(node, data_dir)
    print(f"second SIGINT to exit: {exit_s:.1f} s with 3 tasks running")
    assert exit_s < PROMPT_EXIT_S, node.log()
    for reader in readers:
        done = reader.assert_intact()
        assert done["status"] == "failed" and done["text"]
        assert done["error"]["code"] == "internal" and done["error"]["retryable"] is True
    log = node.log()
    assert log.count("SIGINT: shutting down") == 1, log
    assert log.count("SIGINT again: ending running tasks now") == 1, log
    assert "Traceback" not in log, log
    assert leftovers(data_dir) == [], "embedded servers left running"
    rows = await _rows(data_dir, task_ids)
    assert [r["status"] for r in rows] == ["failed"] * 3
    texts = {r.task_id: r.done["text"] for r in readers if r.done}
    assert sorted(r["response_text"] for r in rows) == sorted(texts.values())


@pytest.mark.timeout(240)
async def test_one_signal_exit_time_with_and_without_running_tasks(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    node = spawn_serve(data_dir, tmp_path / "idle.log", shutdown_grace_s="3")
    try:
        await node.wait_ready()
        token = demo_key(node)  # printed on the first start only
        idle_s = await _exit_after(node, signal.SIGTERM)
    finally:
        await stop_quietly(node, data_dir)
    assert leftovers(data_dir) == [], "embedded servers left running"

    node = spawn_serve(data_dir, tmp_path / "busy.log", shutdown_grace_s="3")
    try:
        await node.wait_ready()
        task_id = await execute(node, token, adhoc(30_000, 20))
        reader = SseReader(task_id)
        (stream, closer) = await read_all([reader], node.url, token)
        await until(lambda: bool(reader.chunks), what="a chunk")
        busy_s = await _exit_after(node, signal.SIGINT)
        await asyncio.wait_for(asyncio.gather(stream, closer), 10)
    finally:
        await stop_quietly(node, data_dir)
    print(f"one signal to exit: {idle_s:.1f} s idle, {busy_s:.1f} s with a task (grace 3 s)")
    assert idle_s < PROMPT_EXIT_S
    assert 3 <= busy_s < 3 + PROMPT_EXIT_S  # the task had its grace, then ended
    assert reader.assert_intact()["status"] == "failed"
    assert leftovers(data_dir) == [], "embedded servers left running"


async def _idle_socket(node: Node, token: str) -> tuple[socketio.AsyncClient, list[str]]:
    """A connected websocket that runs nothing; the events it hears are recorded."""
    sio = socketio.AsyncClient(reconnection=False)
    heard: list[str] = []
    sio.on("server_draining", lambda data=None: heard.append("server_draining"))
    sio.on("disconnect", lambda reason=None: heard.append("disconnect"))
    await sio.connect(node.url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    return sio, heard


@pytest.mark.timeout(240)
async def test_an_open_socket_neither_delays_a_drain_nor_a_second_signal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    node = spawn_serve(data_dir, tmp_path / "drain.log", shutdown_grace_s="120")
    try:
        await node.wait_ready()
        token = demo_key(node)
        sio, heard = await _idle_socket(node, token)
        one_s = await _exit_after(node, signal.SIGTERM)  # no task: nothing to wait for
        await until(lambda: "disconnect" in heard, what="the socket closed")
        await sio.disconnect()
    finally:
        await stop_quietly(node, data_dir)
    assert heard[:2] == ["server_draining", "disconnect"], heard
    node = spawn_serve(data_dir, tmp_path / "hurry.log", shutdown_grace_s="120")
    try:
        await node.wait_ready()
        sio, heard = await _idle_socket(node, token)
        await execute(node, token, adhoc(30_000, 20))  # keeps the grace going
        node.proc.send_signal(signal.SIGINT)
        await until(lambda: "draining" in node.log(), what="the grace period")
        two_s = await _exit_after(node, signal.SIGINT, 60)
        await sio.disconnect()
    finally:
        await stop_quietly(node, data_dir)
    print(f"exit with an open socket: {one_s:.1f} s (one signal), {two_s:.1f} s (second)")
    assert one_s < PROMPT_EXIT_S and two_s < PROMPT_EXIT_S, node.log()
    assert "Traceback" not in node.log(), node.log()


@pytest.mark.timeout(240)
async def test_a_drain_closes_idle_sockets_first_and_busy_ones_after_their_task(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    node = spawn_serve(data_dir, tmp_path / "idle_first.log", shutdown_grace_s="120")
    heard: list[str] = []
    try:
        await node.wait_ready()
        token = demo_key(node)
        idle, idle_heard = await _idle_socket(node, token)
        busy, _ = await _idle_socket(node, token)
        busy.on("task_done", lambda data: heard.append("busy task_done"))
        busy.on("disconnect", lambda reason=None: heard.append("busy disconnect"))
        idle.on("disconnect", lambda reason=None: heard.append("idle disconnect"))
        ack = await busy.call("execute", adhoc(80, 20), timeout=10)  # about 4 s
        assert ack["ok"], ack
        node.proc.send_signal(signal.SIGTERM)
        assert await node.wait_exit(60) == 0, node.log()
        await until(lambda: "busy disconnect" in heard, what="the busy socket closed")
    finally:
        await stop_quietly(node, data_dir)
    assert heard == ["idle disconnect", "busy task_done", "busy disconnect"], heard
    assert "server_draining" in idle_heard
