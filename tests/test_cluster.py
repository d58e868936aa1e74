"""Gateways and workers as real processes on loopback, sharing the tests' Postgres and
Redis; faults injected for real (SIGKILL, SIGTERM, a job taken by a worker that died)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest_asyncio

from server.process.embedded import EmbeddedRedis
from tests.conftest import Client, Infra, assert_intact, redis_of
from tests.nodes import Cluster, until

LOST = {"code": "internal", "message": "the node running the task stopped", "retryable": True}


def adhoc(max_tokens: int, tokens_per_second: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "go"}],
        "model": "simulated/test",
        "settings": {"max_tokens": max_tokens, "tokens_per_second": tokens_per_second},
        "priority": "normal",  # waits in the `jobs` stream, which some tests read directly
    }


@pytest_asyncio.fixture
async def cluster(infra: Infra, database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    nodes = Cluster(database_url, infra.redis_url, tmp_path, redis_cluster=infra.redis_cluster)
    nodes.redis = redis_of(infra)
    try:
        yield nodes
    finally:
        await nodes.stop()


async def _row(cluster: Cluster, task_id: str, sql: str) -> Any:
    conn = await asyncpg.connect(cluster.database_url)
    try:
        return await conn.fetchval(sql, uuid.UUID(task_id))
    finally:
        await conn.close()


async def _holder(cluster: Cluster, task_id: str) -> str:
    assert cluster.redis is not None
    raw = await cluster.redis.get(cluster.keys.claim(task_id))
    return raw.decode() if raw else ""


async def test_tasks_flow_across_gateways_and_workers(cluster: Cluster) -> None:
    g1, g2, w1, _ = await cluster.start(
        ("gateway", "g1"), ("gateway", "g2"), ("worker", "w1"), ("worker", "w2")
    )
    async with aiohttp.ClientSession() as http:  # a worker serves health routes only
        async with http.get(f"{w1.url}/readyz") as resp:
            assert resp.status == 200 and (await resp.json())["ok"] is True
        async with http.get(f"{w1.url}/metrics") as resp:
            assert resp.status == 200 and "promptrelay_tasks_running" in await resp.text()
        async with http.post(f"{w1.url}/v1/executions", json=adhoc(5, 0)) as resp:
            assert resp.status in (404, 405)
    token = await cluster.new_key()
    a, b = await cluster.client(g1, token), await cluster.client(g2, token)

    # Tasks started on either gateway run on a worker and stream back intact.
    pairs: list[tuple[Client, str]] = []
    for i in range(6):
        client = a if i % 2 == 0 else b
        ack = await client.call("execute", adhoc(20, 0))
        assert ack["ok"] is True, ack
        pairs.append((client, ack["task_id"]))
    for client, task_id in pairs:
        await client.wait_done(task_id, 40)
        assert assert_intact(client, task_id)["status"] == "completed"
        assert await _holder(cluster, task_id) in ("w1", "w2")

    # A client of gateway 1 leaves mid-stream and resumes on gateway 2 with after_seq.
    ack = await a.call("execute", adhoc(60, 30))
    task_id = ack["task_id"]
    await until(lambda: len(a.chunks[task_id]) >= 2, what="first chunks")
    await a.sio.disconnect()
    seen = list(a.chunks[task_id])
    after = seen[-1]["seq"]
    c = await cluster.client(g2, token)
    sub = await c.call("subscribe", {"task_id": task_id, "after_seq": after})
    assert sub["ok"] is True, sub
    done = await c.wait_done(task_id, 40)
    assert done["status"] == "completed"
    assert c.seqs(task_id) == list(range(after + 1, done["last_seq"] + 1))
    assert "".join(x["text"] for x in seen) + c.text(task_id) == done["text"]

    # A cancel sent to gateway 1 reaches the worker running a task started on gateway 2.
    ack = await b.call("execute", adhoc(2000, 20))
    task_id = ack["task_id"]
    await until(lambda: len(b.chunks[task_id]) >= 1, what="a chunk")
    d = await cluster.client(g1, token)
    cancelled = await d.call("cancel", {"task_id": task_id})
    assert cancelled == {"ok": True, "status": "cancelled"}
    done = await b.wait_done(task_id, 30)
    assert done["status"] == "cancelled" and done["finish_reason"] == "cancelled"
    assert_intact(b, task_id)


async def test_worker_killed_mid_task_ends_failed_with_partial_text(cluster: Cluster) -> None:
    g1, w1, w2 = await cluster.start(("gateway", "g1"), ("worker", "w1"), ("worker", "w2"))
    token = await cluster.new_key()
    a = await cluster.client(g1, token)
    ack = await a.call("execute", adhoc(2000, 20))
    task_id = ack["task_id"]
    await until(lambda: len(a.chunks[task_id]) >= 2, what="first chunks")
    holder = await _holder(cluster, task_id)
    (w1 if holder == "w1" else w2).kill()

    done = await a.wait_done(task_id, 60)  # lease 3 s, then a sweeper
    assert done["status"] == "failed" and done["error"] == LOST
    assert_intact(a, task_id)
    assert 0 < len(done["text"]) and done["usage"]["output_tokens"] > 0
    assert (
        await _row(cluster, task_id, "SELECT status FROM ai_tasks WHERE task_id = $1") == "failed"
    )
    assert (
        await _row(cluster, task_id, "SELECT response_text FROM ai_tasks WHERE task_id = $1")
        == done["text"]
    )
    assert (
        await _row(cluster, task_id, "SELECT count(*) FROM ai_usage_logs WHERE task_id = $1") == 1
    )

    # The surviving worker goes on serving.
    ack = await a.call("execute", adhoc(10, 0))
    assert (await a.wait_done(ack["task_id"], 40))["status"] == "completed"


async def test_worker_killed_mid_answer_keeps_the_reasoning_it_streamed(cluster: Cluster) -> None:
    """A task whose worker dies ends with the reasoning its history holds: in task_done,
    the task row, and counted apart as reasoning tokens."""
    g1, w1, w2 = await cluster.start(("gateway", "g1"), ("worker", "w1"), ("worker", "w2"))
    a = await cluster.client(g1, await cluster.new_key())
    request = adhoc(2000, 20)
    request["settings"]["reasoning"] = {"effort": "high"}
    ack = await a.call("execute", request)
    task_id = ack["task_id"]
    await until(lambda: len(a.chunks[task_id]) >= 2, what="answer chunks after the reasoning")
    thought = "".join(r["text"] for r in a.reasoning[task_id])
    assert thought
    holder = await _holder(cluster, task_id)
    (w1 if holder == "w1" else w2).kill()

    done = await a.wait_done(task_id, 60)
    assert done["status"] == "failed" and done["error"] == LOST
    assert done["reasoning"] == thought and thought not in done["text"]
    assert done["usage"]["reasoning_tokens"] > 0
    assert done["usage"]["output_tokens"] > done["usage"]["reasoning_tokens"]
    stored = "SELECT reasoning_text FROM ai_tasks WHERE task_id = $1"
    assert await _row(cluster, task_id, stored) == thought


async def test_job_taken_by_a_dead_worker_is_redelivered_and_runs_once(cluster: Cluster) -> None:
    (g1,) = await cluster.start(("gateway", "g1"))
    token = await cluster.new_key()
    a = await cluster.client(g1, token)
    ack = await a.call("execute", adhoc(10, 0))
    task_id = ack["task_id"]
    redis = cluster.redis
    assert redis is not None
    # A worker reads the job and dies before starting it (it never acknowledges).
    stream = cluster.keys.jobs_of(task_id).stream("normal")
    taken = await redis.xreadgroup("workers", "ghost", {stream: ">"}, count=10)
    assert len(taken[0][1]) == 1

    await cluster.start(("worker", "w1"), ("worker", "w2"))
    done = await a.wait_done(task_id, 60)
    assert done["status"] == "completed"
    assert_intact(a, task_id)

    # The same job delivered once more is acknowledged without a second run.
    await redis.xadd(stream, {"j": task_id})

    async def stream_empty() -> bool:
        return int(await redis.xlen(stream)) == 0

    for _ in range(600):
        if await stream_empty():
            break
        await asyncio.sleep(0.05)
    assert await stream_empty()
    # A later task is a barrier: a second run of the first one would have written by now.
    later = await a.call("execute", adhoc(10, 0))
    assert (await a.wait_done(later["task_id"], 40))["status"] == "completed"
    history = await redis.xrange(cluster.keys.history(task_id))
    assert len(history) == done["last_seq"] + 1  # its chunks once, then one terminal record
    calls = await _row(
        cluster,
        task_id,
        "SELECT count(*) FROM task_events WHERE task_id = $1 AND kind = 'provider_call'",
    )
    assert calls == 1
    assert (
        await _row(cluster, task_id, "SELECT count(*) FROM ai_usage_logs WHERE task_id = $1") == 1
    )


async def test_sigterm_worker_lets_tasks_finish_in_grace_then_fails_the_rest(
    cluster: Cluster,
) -> None:
    g1 = cluster.spawn("gateway", "g1")
    w1 = cluster.spawn("worker", "w1", shutdown_grace_s="6")
    await asyncio.gather(g1.wait_ready(), w1.wait_ready())
    token = await cluster.new_key()
    a = await cluster.client(g1, token)
    short = (await a.call("execute", adhoc(30, 15)))["task_id"]  # about 2 s
    long = (await a.call("execute", adhoc(2000, 20)))["task_id"]
    await until(lambda: bool(a.chunks[short]) and bool(a.chunks[long]), what="chunks")

    w1.terminate()
    await until(lambda: "draining" in w1.log(), what="w1 draining")
    (w2,) = await cluster.start(("worker", "w2"))
    later = (await a.call("execute", adhoc(10, 0)))["task_id"]

    assert (await a.wait_done(short, 40))["status"] == "completed"
    done = await a.wait_done(long, 40)
    assert done["status"] == "failed" and done["error"]["code"] == "internal"
    assert done["error"]["retryable"] is True and done["text"]
    assert_intact(a, long)
    assert (await a.wait_done(later, 40))["status"] == "completed"
    assert await _holder(cluster, later) == "w2"  # a draining worker takes no new job
    assert await w1.wait_exit() == 0


async def test_sigterm_gateway_tells_clients_to_reconnect_elsewhere(cluster: Cluster) -> None:
    g1, g2, _ = await cluster.start(("gateway", "g1"), ("gateway", "g2"), ("worker", "w1"))
    token = await cluster.new_key()
    a = await cluster.client(g1, token)
    told = asyncio.Event()
    a.sio.on("server_draining", lambda data: told.set())
    ack = await a.call("execute", adhoc(80, 20))
    task_id = ack["task_id"]
    await until(lambda: bool(a.chunks[task_id]), what="a chunk")

    g1.terminate()
    await asyncio.wait_for(told.wait(), 30)
    after = a.seqs(task_id)[-1]
    b = await cluster.client(g2, token)
    assert (await b.call("subscribe", {"task_id": task_id, "after_seq": after}))["ok"]
    done = await b.wait_done(task_id, 40)
    assert done["status"] == "completed"
    mine = [c["text"] for c in a.chunks[task_id] if c["seq"] <= after]
    assert "".join(mine) + b.text(task_id) == done["text"]
    assert await g1.wait_exit() == 0


async def test_redis_restart_mid_stream_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    own = EmbeddedRedis(tmp_path / "redis")  # this test's own Redis, restarted for real
    own.start()
    try:
        cluster.redis_url = own.url
        cluster.redis_cluster = False  # one server, also when the suite runs on a cluster
        g1 = cluster.spawn("gateway", "g1", lease_ttl_s="15")
        w1 = cluster.spawn("worker", "w1", lease_ttl_s="15")
        await asyncio.gather(g1.wait_ready(), w1.wait_ready())
        token = await cluster.new_key()
        a = await cluster.client(g1, token)
        ack = await a.call("execute", adhoc(80, 20))  # about 4 s
        task_id = ack["task_id"]
        await until(lambda: len(a.chunks[task_id]) >= 2, what="first chunks")
        own.stop()  # saves its data, as a managed Redis restart does
        own.start()
        done = await a.wait_done(task_id, 60)
        assert done["status"] == "completed"
        assert_intact(a, task_id)
        # Both nodes work on after the restart: a new task streams end to end.
        ack = await a.call("execute", adhoc(10, 0))
        assert (await a.wait_done(ack["task_id"], 40))["status"] == "completed"
        # The gateway's relay, subscribed to the worker's task, logged the outage once each way.
        log = g1.log()
        assert log.count("Redis (relay) unreachable") == 1, log
        assert log.count("Redis (relay) is back") == 1, log
    finally:
        await cluster.stop()
        own.stop()


async def test_cancel_before_any_worker_started_the_task(cluster: Cluster) -> None:
    (g1,) = await cluster.start(("gateway", "g1"))  # no worker yet: the job waits
    token = await cluster.new_key()
    a = await cluster.client(g1, token)
    task_id = (await a.call("execute", adhoc(10, 0)))["task_id"]
    assert await a.call("cancel", {"task_id": task_id}) == {"ok": True, "status": "cancelled"}
    done = await a.wait_done(task_id, 30)
    assert done["status"] == "cancelled" and done["text"] == "" and done["last_seq"] == 0

    # A worker that arrives later acknowledges the job without running it.
    await cluster.start(("worker", "w1"))
    redis = cluster.redis
    assert redis is not None
    stream = cluster.keys.jobs_of(task_id).stream("normal")
    for _ in range(600):
        if int(await redis.xlen(stream)) == 0:
            break
        await asyncio.sleep(0.05)
    assert int(await redis.xlen(stream)) == 0
    later = (await a.call("execute", adhoc(10, 0)))["task_id"]  # barrier, as above
    assert (await a.wait_done(later, 40))["status"] == "completed"
    assert (
        await _row(cluster, task_id, "SELECT status FROM ai_tasks WHERE task_id = $1")
        == "cancelled"
    )
    assert len(await redis.xrange(cluster.keys.history(task_id))) == 1  # the terminal record only


async def test_what_the_gateway_decided_reaches_the_worker(cluster: Cluster) -> None:
    """Output validations (a builtin's JSON Schema) and fallback models cross the job stream:
    the worker validates the final text and would know where to fall back."""
    g1, _ = await cluster.start(("gateway", "g1"), ("worker", "w1"))
    client = await cluster.client(g1, await cluster.new_key())
    ack = await client.call(
        "execute",
        {
            "builtin": "code-review",
            "variables": {"language": "python", "code": "x = 1"},
            "model": "simulated/review",
            "settings": {
                "max_tokens": 6,
                "tokens_per_second": 0,
                "fallbacks": ["simulated/backup"],
            },
        },
    )
    assert ack["ok"] is True, ack
    done = await client.wait_done(ack["task_id"], 40)
    assert_intact(client, ack["task_id"])
    assert done["status"] == "completed" and await _holder(cluster, ack["task_id"]) == "w1"
    # the simulator's words are not the JSON the builtin's schema asks for
    assert done["validation"]["status"] == "failed" and done["validation"]["errors"], done
    status = await _row(
        cluster, ack["task_id"], "SELECT validation_status FROM ai_tasks WHERE task_id = $1"
    )
    assert status == "failed"


def _cpu_s(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_every_partition_is_read_reclaimed_and_swept(cluster: Cluster) -> None:
    """Jobs read by a dead consumer in several partitions are delivered again, and the
    running tasks of a killed worker end in whichever partition they are leased."""
    (g1,) = await cluster.start(("gateway", "g1"))
    a = await cluster.client(g1, await cluster.new_key())
    redis = cluster.redis
    assert redis is not None
    taken = []
    for _ in range(4):
        task_id = (await a.call("execute", adhoc(10, 0)))["task_id"]
        stream = cluster.keys.jobs_of(task_id).stream("normal")
        got = await redis.xreadgroup("workers", "ghost", {stream: ">"}, count=10)
        assert [e[1][b"j"].decode() for e in got[0][1]] == [task_id]
        taken.append(task_id)
    assert len({cluster.keys.jobs_of(t) for t in taken}) > 1

    (w1,) = await cluster.start(("worker", "w1"))
    for task_id in taken:  # read again once idle for LEASE_TTL_S, and run once
        assert (await a.wait_done(task_id, 60))["status"] == "completed"
        assert_intact(a, task_id)
        sql = "SELECT count(*) FROM ai_usage_logs WHERE task_id = $1"
        assert await _row(cluster, task_id, sql) == 1

    # An idle worker looks at every partition in turn without spinning a core.
    before, started = _cpu_s(w1.proc.pid), time.monotonic()
    await asyncio.sleep(3)
    share = (_cpu_s(w1.proc.pid) - before) / (time.monotonic() - started)
    assert share < 0.1, f"an idle worker used {share:.0%} of a core"

    running = [(await a.call("execute", adhoc(2000, 20)))["task_id"] for _ in range(6)]
    assert len({cluster.keys.jobs_of(t) for t in running}) > 1
    await until(lambda: all(a.chunks[t] for t in running), what="chunks of every task")
    w1.kill()
    for task_id in running:
        done = await a.wait_done(task_id, 60)
        assert done["status"] == "failed" and done["error"] == LOST
        assert_intact(a, task_id)
    await cluster.start(("worker", "w2"))
    b = await cluster.client(g1, await cluster.new_key())  # a free tier's day is ten tasks
    later = (await b.call("execute", adhoc(10, 0)))["task_id"]
    assert (await b.wait_done(later, 40))["status"] == "completed"


async def test_jobs_queued_before_an_upgrade_still_run(cluster: Cluster) -> None:
    """The single job queue of versions before partitions: the jobs waiting in it (one of
    them read by an old worker that died) are run by the new workers, and a task an old
    worker was running when it died is swept from the old lease set."""
    (g1,) = await cluster.start(("gateway", "g1"))
    a = await cluster.client(g1, await cluster.new_key())
    redis = cluster.redis
    assert redis is not None
    keys, legacy = cluster.keys, cluster.keys.legacy_jobs()
    waiting = {
        (await a.call("execute", {**adhoc(10, 0), "priority": level}))["task_id"]: level
        for level in ("normal", "high", "low", "normal")
    }
    orphan = (await a.call("execute", adhoc(10, 0)))["task_id"]
    for stream in legacy.streams():  # what the earlier version had created
        await redis.xgroup_create(stream, "workers", id="0", mkstream=True)
    # Each job as the earlier version queued it: the description and the stream entry in the
    # old queue, nothing in the partitions.
    for task_id, level in [*waiting.items(), (orphan, "normal")]:
        part = keys.jobs_of(task_id)
        raw = await redis.get(part.job(task_id))
        assert raw is not None
        entries = await redis.xrange(part.stream(level))
        ids = [e for e, fields in entries if fields[b"j"].decode() == task_id]
        assert len(ids) == 1
        await redis.xdel(part.stream(level), *ids)
        await redis.delete(part.job(task_id))
        await redis.set(legacy.job(task_id), raw)
        if task_id != orphan:
            await redis.xadd(legacy.stream(level), {"j": task_id})
    # an old worker read the first job and died before claiming it ...
    got = await redis.xreadgroup("workers", "old", {legacy.stream("normal"): ">"}, count=1)
    assert got[0][1][0][1][b"j"].decode() == next(iter(waiting))
    # ... and another one died running `orphan`: its claim and an expired lease, old style
    await redis.set(legacy.claim(orphan), "old-worker")
    await redis.zadd(legacy.leases(), {orphan: 0})

    await cluster.start(("worker", "w1"))
    for task_id in waiting:
        done = await a.wait_done(task_id, 60)
        assert done["status"] == "completed", done
        assert_intact(a, task_id)
        assert await _holder(cluster, task_id) == "w1"
    done = await a.wait_done(orphan, 60)
    assert done["status"] == "failed" and done["error"] == LOST
    for stream in legacy.streams():
        assert await redis.xlen(stream) == 0
    assert await redis.zcard(legacy.leases()) == 0
