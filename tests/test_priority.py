"""Execution priority: the pure picker's order and its anti-starvation bound, the default
by tier, the partitioned job queue on the real Redis (a high job in another partition than
the low ones still goes first), and jobs waiting in the real Redis job streams between an
in-process gateway and a worker that runs one task at a time, started in priority order."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from db import users
from db.pool import connect
from engine.cluster.jobs import Job
from engine.cluster.priority import LEVELS, PriorityPicker
from engine.cluster.queue import Doorbell, JobQueue
from engine.redis_keys import RedisKeys, partition_of
from engine.settings import Settings
from server.state import REDIS
from tests.conftest import Infra, Server, redis_of, start_server, stop_server


def drain(picker: PriorityPicker, waiting: dict[str, list[str]], wanted: int = 1) -> list[str]:
    """Run the picker against in-memory FIFO queues until they are empty: start order."""
    started: list[str] = []
    while any(waiting.values()):
        empty: set[str] = set()
        taken = 0
        while taken < wanted:
            step = picker.next_read(wanted - taken, empty)
            if step is None:
                break
            level, n = step
            got = waiting[level][:n]
            del waiting[level][:n]
            picker.record(level, len(got))
            if len(got) < n:
                empty.add(level)
            started += got
            taken += len(got)
    return started


def test_priority_order_fifo_within_a_priority() -> None:
    waiting = {"high": ["h1", "h2"], "normal": ["n1", "n2"], "low": ["l1", "l2"]}
    assert drain(PriorityPicker(8), waiting) == ["h1", "h2", "n1", "n2", "l1", "l2"]


def test_low_waits_at_most_bound_higher_starts() -> None:
    waiting = {"high": [f"h{i}" for i in range(10)], "normal": [], "low": ["l1", "l2"]}
    order = drain(PriorityPicker(3), waiting)
    assert order[:4] == ["h0", "h1", "h2", "l1"]
    assert order.index("l2") - order.index("l1") == 4  # three highs between, then l2


@pytest.mark.parametrize("wanted", [1, 2, 5, 16])
@pytest.mark.parametrize("bound", [1, 2, 8])
def test_bound_holds_for_every_batch_size(wanted: int, bound: int) -> None:
    waiting = {
        "high": [f"h{i}" for i in range(40)],
        "normal": [f"n{i}" for i in range(40)],
        "low": [f"l{i}" for i in range(40)],
    }
    order = drain(PriorityPicker(bound), waiting, wanted)
    assert sorted(order) == sorted(f"{p}{i}" for p in "hnl" for i in range(40))
    for level in ("normal", "low"):
        rank = LEVELS.index(level)
        passed = 0  # higher-priority starts since this level last started one
        for name in order:
            mine = LEVELS["hnl".index(name[0])]
            if mine == level:
                passed = 0
            elif LEVELS.index(mine) < rank and any(
                n[0] == level[0] for n in order[order.index(name) :]
            ):
                passed += 1
                assert passed <= bound, (level, order)
    for prefix in "hnl":  # first in, first out within a priority
        mine = [int(n[1:]) for n in order if n[0] == prefix]
        assert mine == sorted(mine)


def test_an_empty_lower_level_does_not_slow_the_higher_ones() -> None:
    picker = PriorityPicker(2)
    waiting = {"high": [f"h{i}" for i in range(7)], "normal": [], "low": []}
    assert drain(picker, waiting) == [f"h{i}" for i in range(7)]


def _ids_in(partitions: list[int], count: int = 16) -> list[str]:
    """Task ids that land in the given partitions, one each, in that order."""
    out = []
    for wanted in partitions:
        while True:
            task_id = str(uuid.uuid4())
            if partition_of(task_id, count) == wanted:
                out.append(task_id)
                break
    return out


def _queued(task_id: str, priority: str) -> Job:
    return Job(
        task_id=task_id,
        run_id=None,
        user_id=str(uuid.uuid4()),
        provider="simulated",
        model="prio",
        messages=[{"role": "user", "content": "go"}],
        settings={},
        new_messages=[],
        priority=priority,
    )


async def _taken(queue: JobQueue, count: int) -> list[str]:
    """Task ids in the order a worker taking `count` at a time starts them."""
    order: list[str] = []
    while got := await queue.take("w", count):
        for entry_id, task_id in got:
            await queue.ack(entry_id)
            order.append(task_id)
    return order


async def test_a_high_job_in_another_partition_goes_before_the_low_ones(infra: Infra) -> None:
    redis = redis_of(infra)
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    queue = JobQueue(redis, keys, bound=8)
    try:
        await queue.ensure_group()
        low1, low2, normal, high = _ids_in([3, 3, 9, 12])
        for task_id, level in [(low1, "low"), (low2, "low"), (normal, "normal"), (high, "high")]:
            await queue.enqueue(_queued(task_id, level))
        assert await _taken(queue, 1) == [high, normal, low1, low2]
        # first in, first out within a priority across partitions, and every partition read
        ids = _ids_in([5, 1, 14, 1, 7, 0])
        for task_id in ids:
            await queue.enqueue(_queued(task_id, "normal"))
        assert await _taken(queue, 1) == ids
        for task_id in ids:
            await queue.enqueue(_queued(task_id, "normal"))
        assert sorted(await _taken(queue, 4)) == sorted(ids)
        # the anti-starvation bound holds across partitions too
        low = _ids_in([2])[0]
        highs = _ids_in([4, 6, 8, 10, 11])
        await queue.enqueue(_queued(low, "low"))
        for task_id in highs:
            await queue.enqueue(_queued(task_id, "high"))
        order = await _taken(JobQueue(redis, keys, bound=2), 1)
        assert order == [*highs[:2], low, *highs[2:]]
        # and the job descriptions are kept in each task's own partition
        described = await queue.describe(low)
        assert described is not None and (described.task_id, described.priority) == (low, "low")
        assert await redis.exists(keys.job_partition(2).job(low)) == 1
    finally:
        await redis.aclose()


async def test_a_queued_job_rings_the_idle_workers_doorbell(infra: Infra) -> None:
    redis = redis_of(infra)
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    queue, bell = JobQueue(redis, keys, bound=8), Doorbell(redis, keys)
    try:
        await queue.ensure_group()
        assert await bell.wait(0.2) is None  # nothing rang: look at every partition
        first, second = _ids_in([7, 2])
        await queue.enqueue(_queued(first, "low"))
        await queue.enqueue(_queued(second, "high"))
        rung: set[int] = set()
        while rung != {7, 2}:  # one wait returns the rings that have arrived by then
            got = await bell.wait(5)
            assert got and got <= {7, 2}, got
            rung |= got
        # the rung partitions alone are looked at, in priority order
        assert [t for _, t in await queue.take("w", 5, rung)] == [second, first]
        # what is not a partition of this queue rings nothing
        await redis.publish(keys.jobs_ready_channel(), "nonsense")
        assert await bell.wait(1) is None
        assert await queue.take("w", 5, {99}) == []
    finally:
        await bell.close()
        await redis.aclose()


async def _key(settings: Settings, tier: str) -> str:
    conn = await connect(settings.database_url or "")
    try:
        user = await users.ensure_user(conn, f"{uuid.uuid4().hex[:8]}@prio", tier)
        return (await users.create_api_key(conn, user.id)).key
    finally:
        await conn.close()


def _job(priority: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "go"}],
        "model": "simulated/prio",
        "settings": {"max_tokens": 3, "tokens_per_second": 0},
    }
    if priority is not None:
        body["priority"] = priority
    return body


async def _start_order(settings: Settings, task_ids: list[str]) -> list[str]:
    """The order the worker ran them in: it runs one at a time, so usage-log rows (written
    at each task's end) are in start order."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT task_id FROM ai_usage_logs WHERE task_id = ANY($1::uuid[]) ORDER BY id",
            [uuid.UUID(t) for t in task_ids],
        )
    finally:
        await conn.close()
    return [str(r["task_id"]) for r in rows]


async def _run_waiting(
    settings: Settings, priorities: list[str | None], bound: int, tier: str = "premium"
) -> tuple[list[str], list[str], Server]:
    gateway = await start_server(settings.model_copy(update={"role": "gateway"}))
    worker = None
    try:
        client = await gateway.client(await _key(settings, tier))
        task_ids = []
        for priority in priorities:  # no worker yet: every job waits in its stream
            ack = await client.call("execute", _job(priority))
            assert ack["ok"], ack
            task_ids.append(ack["task_id"])
        update = {"role": "worker", "worker_concurrency": 1, "priority_starvation_bound": bound}
        worker = await start_server(settings.model_copy(update=update))
        for task_id in task_ids:
            assert (await client.wait_done(task_id, 60))["status"] == "completed"
        return task_ids, await _start_order(settings, task_ids), gateway
    finally:
        if worker is not None:
            await stop_server(worker)
        await stop_server(gateway)


async def test_waiting_jobs_start_in_priority_order(settings: Settings) -> None:
    priorities: list[str | None] = ["low", None, "high", "low", "high", "normal"]
    ids, order, _ = await _run_waiting(settings, priorities, bound=8)
    # premium's default is normal; first in, first out within a priority
    assert order == [ids[2], ids[4], ids[1], ids[5], ids[0], ids[3]]


async def test_waiting_low_job_is_not_starved(settings: Settings) -> None:
    priorities: list[str | None] = ["low", "high", "high", "high", "high", "high"]
    ids, order, _ = await _run_waiting(settings, priorities, bound=2)
    assert order == [ids[1], ids[2], ids[0], ids[3], ids[4], ids[5]]


async def test_priority_default_by_tier_and_shown_on_the_task(settings: Settings) -> None:
    server = await start_server(settings)
    try:
        for tier, asked, shown in [
            ("free", None, "low"),
            ("premium", None, "normal"),
            ("byok", None, "normal"),
            ("free", "high", "high"),
        ]:
            client = await server.client(await _key(settings, tier))
            ack = await client.call("execute", _job(asked))
            assert ack["ok"], ack
            await client.wait_done(ack["task_id"])
            view = await server.engine.task_view(
                users.User(id=await _owner(settings, ack["task_id"]), email=None, tier=tier),
                uuid.UUID(ack["task_id"]),
            )
            assert view["priority"] == shown, (tier, asked, view)
        client = await server.client(await _key(settings, "free"))
        bad = await client.call("execute", _job("urgent"))
        assert bad["ok"] is False and bad["error"]["code"] == "invalid_request"
        assert bad["error"]["details"]["errors"][0]["field"] == "priority"
    finally:
        await stop_server(server)


async def _owner(settings: Settings, task_id: str) -> uuid.UUID:
    conn = await asyncpg.connect(settings.database_url)
    try:
        owner: uuid.UUID = await conn.fetchval(
            "SELECT user_id FROM ai_tasks WHERE task_id = $1", uuid.UUID(task_id)
        )
        return owner
    finally:
        await conn.close()


async def test_gateway_and_worker_streams_are_separate_per_priority(settings: Settings) -> None:
    gateway = await start_server(settings.model_copy(update={"role": "gateway"}))
    try:
        client = await gateway.client(await _key(settings, "premium"))
        for priority in ("high", "normal", "low", "low"):
            assert (await client.call("execute", _job(priority)))["ok"]
        redis = gateway.app[REDIS]
        keys = RedisKeys(settings.redis_prefix)
        lengths = [
            sum([await redis.xlen(part.stream(p)) for part in keys.job_partition_list()])
            for p in ("high", "normal", "low")
        ]
        assert lengths == [1, 1, 2]
    finally:
        await stop_server(gateway)
