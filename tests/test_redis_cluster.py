"""Redis Cluster mode: every transaction and script touches one slot (checked on the key
names), and with PROMPTRELAY_TEST_REDIS=cluster, tasks handed from a gateway to a worker
stream through a real three-master cluster, also while a master is killed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from engine.cluster.jobs import Job, Leases
from engine.cluster.queue import JobQueue
from engine.redis_keys import RedisKeys
from engine.settings import Settings
from server.state import REDIS
from tests.conftest import (
    Client,
    Infra,
    Server,
    assert_intact,
    redis_of,
    start_server,
    stop_server,
)


def slot(name: str) -> int:
    return int(key_slot(name.encode()))


def test_a_tasks_records_and_channel_share_a_slot() -> None:
    keys = RedisKeys("ps:")
    task = uuid.uuid4()
    # publish_done's MULTI/EXEC: history and live channel (SPUBLISH is keyed on a cluster)
    assert slot(keys.history(task)) == slot(keys.live(task))
    assert slot(keys.history(task)) != slot(keys.history(uuid.uuid4())) or True  # spread


def test_each_partition_of_the_hand_off_shares_one_slot() -> None:
    keys = RedisKeys("ps:")
    task, other = uuid.uuid4(), uuid.uuid4()
    # the claim, renew and sweep scripts; enqueue's and ack's MULTI/EXEC; the heads script
    # over the three priorities of a partition
    part = keys.jobs_of(task)
    names = [
        part.leases(),
        keys.claim(task),
        part.claim(other),
        keys.job(task),
        keys.cancel_flag(task),
        *part.streams(),
    ]
    assert {slot(n) for n in names} == {slot(part.base)}
    # the partitions are as many slots: no one key carries every job
    partitions = keys.job_partition_list()
    assert len(partitions) == 16
    assert len({slot(p.base) for p in partitions}) == 16
    # a task's partition is the same wherever it is computed, and tasks spread over all
    spread = {keys.jobs_of(uuid.uuid4()).base for _ in range(2000)}
    assert spread == {p.base for p in partitions}
    assert keys.jobs_of(str(task)) == RedisKeys("ps:", 16).jobs_of(task)
    # the queue of earlier versions keeps its name, for the workers that drain it
    assert keys.legacy_jobs().base == "ps:{ps:jobs}"
    # another deployment's prefix on the same cluster has its own slots
    assert RedisKeys("other:").job_partition(0).base != keys.job_partition(0).base


def test_a_users_keys_share_a_slot() -> None:
    keys = RedisKeys("ps:")
    user = uuid.uuid4()
    # the reserve and settle scripts, the quota MGET, the connection admit script
    names = [
        keys.quota_day(user, "2026-01-02"),
        keys.quota_month(user, "2026-01"),
        keys.running_slots(user),
        keys.connections(user),
        keys.idempotency(user, "r1"),
    ]
    assert len({slot(n) for n in names}) == 1


@pytest.fixture
def cluster_infra(infra: Infra) -> Infra:
    if infra.cluster is None:
        pytest.skip("runs with PROMPTRELAY_TEST_REDIS=cluster (.ci/run does)")
    return infra


@pytest_asyncio.fixture
async def split(cluster_infra: Infra, settings: Settings) -> AsyncIterator[tuple[Server, Server]]:
    """A gateway and a worker: every record reaches the gateway over sharded pub/sub."""
    tuned = settings.model_copy(update={"lease_ttl_s": 5.0})
    gateway = await start_server(tuned.model_copy(update={"role": "gateway"}))
    worker = await start_server(tuned.model_copy(update={"role": "worker"}))
    try:
        yield gateway, worker
    finally:
        await stop_server(gateway)
        await stop_server(worker)


def adhoc(max_tokens: int, tokens_per_second: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "go"}],
        "model": "simulated/test",
        "settings": {"max_tokens": max_tokens, "tokens_per_second": tokens_per_second},
    }


async def _start(client: Client, n: int, tokens: int, tps: int) -> list[str]:
    ids = []
    for _ in range(n):
        ack = await client.call("execute", adhoc(tokens, tps))
        assert ack["ok"] is True, ack
        ids.append(ack["task_id"])
    return ids


async def test_tasks_stream_from_a_worker_through_the_cluster(split: tuple[Server, Server]) -> None:
    gateway, _ = split
    assert isinstance(gateway.app[REDIS], RedisCluster)
    client = await gateway.client(await gateway.new_key())
    ids = await _start(client, 12, 30, 200)
    for task_id in ids:
        await client.wait_done(task_id, 60)
        assert assert_intact(client, task_id)["status"] == "completed"


async def test_a_master_killed_mid_stream_ends_every_task(
    split: tuple[Server, Server], cluster_infra: Infra
) -> None:
    """A master killed with `kill -9` while 50 tasks stream (five users, ten each): each
    completes with every chunk once, or ends with a terminal error; nothing hangs, no task
    stays running, each is finalized once, and the cluster takes new work after."""
    processes = cluster_infra.cluster
    assert processes is not None
    gateway, _ = split
    clients = [await gateway.client(await gateway.new_key()) for _ in range(5)]
    started = [await _start(client, 10, 60, 15) for client in clients]  # about 4 s each
    tasks = [(client, t) for client, ids in zip(clients, started, strict=True) for t in ids]
    for client, task_id in tasks:
        await client.wait_chunks(task_id, 1, 30)
    # the master of a job queue partition's slot: some of the hand-off and of the tasks go
    # down with it
    redis = cast(RedisCluster, gateway.app[REDIS])
    first = tasks[0][1]
    node = redis.get_node_from_key(RedisKeys(gateway.settings.redis_prefix).jobs_of(first).base)
    assert node is not None and node.port in processes.masters()
    victim = node.port
    processes.kill(victim)
    try:
        outcomes = {"completed": 0, "failed": 0}
        for client, task_id in tasks:
            done = await client.wait_done(task_id, 90)
            outcomes[done["status"]] += 1
            if done["status"] == "completed":
                assert_intact(client, task_id)
            else:
                assert done["status"] == "failed" and done["error"]["code"], done
                seqs = client.seqs(task_id)
                assert seqs == sorted(set(seqs)), "a chunk arrived twice"
        print("after the kill:", outcomes)
        ids = [t for _, t in tasks]
        running = await _counts(
            gateway.settings,
            ids,
            "SELECT task_id, count(*) AS n FROM ai_tasks"
            " WHERE status = 'running' AND task_id = ANY($1::uuid[]) GROUP BY task_id",
        )
        assert running == [0] * len(ids)
        finalized = await _counts(
            gateway.settings,
            ids,
            "SELECT task_id, count(*) AS n FROM ai_usage_logs"
            " WHERE task_id = ANY($1::uuid[]) GROUP BY task_id",
        )
        assert finalized == [1] * len(ids)
        # and the cluster still takes new work
        later = await _start(clients[0], 2, 10, 0)
        for task_id in later:
            await clients[0].wait_done(task_id, 60)
            assert assert_intact(clients[0], task_id)["status"] == "completed"
    finally:
        processes.restart(victim)  # back as a replica: the next test has six nodes again
        await asyncio.to_thread(processes.wait_ok)


async def _counts(settings: Settings, ids: list[str], sql: str) -> list[int]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(sql, [uuid.UUID(t) for t in ids])
    finally:
        await conn.close()
    found = {str(r["task_id"]): int(r["n"]) for r in rows}
    return [found.get(t, 0) for t in ids]


async def test_slots_migrated_while_tasks_stream(
    split: tuple[Server, Server], cluster_infra: Infra
) -> None:
    """A job-queue partition's slot (leases, claims, job descriptions, streams) and a live
    task's slot (its history) move to another master, key by key, while tasks stream and
    new ones are queued: every task completes with every chunk once, none stays running,
    each is finalized once."""
    processes = cluster_infra.cluster
    assert processes is not None
    gateway, _ = split
    keys = RedisKeys(gateway.settings.redis_prefix)
    client = await gateway.client(await gateway.new_key())
    ids = await _start(client, 8, 120, 15)  # about eight seconds each
    ids.insert(1, (await _start(client, 1, 400, 15))[0])  # whose slot moves: 27 s
    for task_id in ids:
        await client.wait_chunks(task_id, 1, 30)
    moves = [slot(keys.history(ids[1])), slot(keys.jobs_of(ids[0]).base)]

    async def migrate(number: int) -> int:
        target = next(p for p in processes.masters() if p != processes.owner(number))
        return await asyncio.to_thread(processes.migrate_slot, number, target, 0.3)

    async def migrate_both() -> list[int]:
        moved = [await migrate(moves[0])]
        # the moved task's chunks still arrive live: its sharded subscription followed
        seen = len(client.chunks[ids[1]])
        await client.wait_chunks(ids[1], seen + 3, 15)
        assert ids[1] not in client.done
        return [*moved, await migrate(moves[1])]

    errors_before = processes.errors()
    migration = asyncio.create_task(migrate_both())
    later: list[str] = []
    while not migration.done():  # more work queued and started while the slots move
        later += await _start(client, 1, 20, 40)
        await asyncio.sleep(0.4)
    moved = await migration
    assert moved[0] == 1 and moved[1] >= 3, moved  # the history; the partition's keys
    errors = processes.errors()
    redirected = {k: errors.get(k, 0) - errors_before.get(k, 0) for k in ("ASK", "TRYAGAIN")}
    print("redirects during the migration:", redirected)
    assert redirected["ASK"] > 0, redirected  # the clients met the moving slots
    for task_id in [*ids, *later]:
        done = await client.wait_done(task_id, 60)
        assert done["status"] == "completed", done
        assert_intact(client, task_id)
    everything = [*ids, *later]
    running = await _counts(
        gateway.settings,
        everything,
        "SELECT task_id, count(*) AS n FROM ai_tasks"
        " WHERE status = 'running' AND task_id = ANY($1::uuid[]) GROUP BY task_id",
    )
    assert running == [0] * len(everything)
    finalized = await _counts(
        gateway.settings,
        everything,
        "SELECT task_id, count(*) AS n FROM ai_usage_logs"
        " WHERE task_id = ANY($1::uuid[]) GROUP BY task_id",
    )
    assert finalized == [1] * len(everything)
    for number, owner in zip(moves, [processes.owner(n) for n in moves], strict=True):
        assert owner in processes.masters(), (number, owner)


async def test_hand_off_on_a_half_moved_slot_waits_for_the_move(
    cluster_infra: Infra, settings: Settings
) -> None:
    """While a partition's keys are split between two masters, a transaction or script
    over several of them gets TRYAGAIN (the client's own retries last about half a second):
    queueing and claiming wait for the move to end instead of failing the task."""
    processes = cluster_infra.cluster
    assert processes is not None
    redis = redis_of(cluster_infra)
    keys = RedisKeys(settings.redis_prefix)
    queue = JobQueue(redis, keys, bound=8)
    leases = Leases(redis, keys, "w", 30.0)
    try:
        await queue.ensure_group()
        first, second = str(uuid.uuid4()), ""
        while not second:  # another task of the same partition
            other = str(uuid.uuid4())
            second = other if keys.jobs_of(other) == keys.jobs_of(first) else ""
        part = keys.jobs_of(first)
        await queue.enqueue(Job(first, None, str(uuid.uuid4()), "simulated", "m", [], {}, []))
        assert await leases.claim(first)
        number = slot(part.base)
        target = next(p for p in processes.masters() if p != processes.owner(number))
        source, ids = await asyncio.to_thread(processes.start_migration, number, target)
        # the normal stream and the first claim move; the high stream and the lease set stay
        await asyncio.to_thread(
            processes.move_keys, source, target, part.stream("normal"), part.claim(first)
        )
        job = Job(second, None, str(uuid.uuid4()), "simulated", "m", [], {}, [], priority="high")
        queued = asyncio.create_task(queue.enqueue(job))
        claimed = asyncio.create_task(leases.claim(second))
        await asyncio.sleep(1.5)
        assert not queued.done() and not claimed.done()
        await asyncio.to_thread(processes.end_migration, number, source, target, ids)
        await asyncio.wait_for(queued, 10)
        assert await asyncio.wait_for(claimed, 10) is True
        assert processes.owner(number) == target
        assert await leases.renew([first, second]) == []
        taken = await queue.take("w", 10)
        assert sorted(t for _, t in taken) == sorted([first, second])
    finally:
        await redis.aclose()
