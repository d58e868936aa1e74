"""The job queue: JOB_PARTITIONS partitions, each with one stream per priority under its own
Redis hash tag, read by the consumer group of all workers.

A gateway stores a job's description and adds it to the stream of its priority in the
task's partition (a hash of the task id, engine/redis_keys.py), in one transaction, so no
single key carries every job. A worker looks at the head of every stream (one script per
partition: the oldest entry not yet delivered to the group), picks the priority with its
`PriorityPicker`, and reads that priority's partitions oldest head first: first in, first
out within a priority across partitions, and no partition is left behind. Reads cannot
block across slots, so a worker that found nothing waits on the `Doorbell`: the gateway
publishes each queued job's partition on one deployment-wide channel, and the worker then
looks only at the partitions rung (it looks at all of them every `IDLE_SCAN_S` anyway,
for a ring lost with a connection).

Jobs waiting in the single queue of earlier versions are moved to their partitions by the
workers (`drain_legacy`), so an upgrade loses none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from engine.aio import check_cancelled, close_pubsub
from engine.cluster.jobs import GROUP, JOB_TTL_S, Job, across_moves, task_ids
from engine.cluster.priority import LEVELS, PriorityPicker
from engine.redis_keys import JobKeys, RedisKeys, partition_of

log = logging.getLogger(__name__)

IDLE_SCAN_S = 1.0  # an idle worker looks at every partition this often, rung or not
_SEP = "/"  # entry ids handed out are `partition/level/redis-id`
_NO_GROUP = b"-"

# KEYS: the streams of one partition, highest priority first. ARGV: group. For each stream,
# when its oldest entry not yet delivered to the group was queued (microseconds since the
# epoch: the gateway's stamp `t`, else the entry id's milliseconds); false when none waits,
# and `-` for a stream without the group (Redis lost it: the worker creates it again). An
# empty stream costs one XLEN: an idle worker's look is cheap.
# Entry ids alone cannot order streams: each stream numbers its own entries.
_HEADS = """
local out = {}
for i, stream in ipairs(KEYS) do
    out[i] = false
    if redis.call('XLEN', stream) > 0 then
        out[i] = '-'
        for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
            local info = {}
            for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
            if info['name'] == ARGV[1] then
                out[i] = false
                local nxt = redis.call('XRANGE', stream, '(' .. info['last-delivered-id'],
                    '+', 'COUNT', 1)
                if #nxt > 0 then
                    out[i] = string.match(nxt[1][1], '^%d+') .. '000'
                    local fields = nxt[1][2]
                    for j = 1, #fields, 2 do
                        if fields[j] == 't' then out[i] = fields[j + 1] end
                    end
                end
            end
        end
    end
end
return out
"""


def _stamp() -> str:
    """When a job is queued, in microseconds: orders the heads of different streams."""
    return str(time.time_ns() // 1000)


class JobQueue:
    """The partitioned job streams of the three priorities, and the job descriptions."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, bound: int) -> None:
        self.redis = redis
        self.names = keys
        self.parts = keys.job_partition_list()
        self.picker = PriorityPicker(bound)
        self._heads = redis.register_script(_HEADS)
        self._turn = 0  # where the next reclaim starts: partitions in turn

    async def _create_groups(self, streams: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
                raise result  # BUSYGROUP: the group exists, the normal case

    async def ensure_group(self) -> None:
        """Create the consumer group on every stream of every partition."""
        await self._create_groups([s for part in self.parts for s in part.streams()])

    async def enqueue(self, job: Job) -> None:
        """Store the job's description and add it to its priority's stream, atomically."""
        level = job.priority if job.priority in LEVELS else "normal"
        await self._queue(self.names.jobs_of(job.task_id), level, job.task_id, job.encode())
        await self._ring(job.task_id)

    async def _ring(self, task_id: str) -> None:
        """Wake the idle workers; a ring that fails is made up for by their next full look."""
        partition = partition_of(task_id, len(self.parts))
        try:
            await self.redis.publish(self.names.jobs_ready_channel(), str(partition))
        except (RedisError, OSError) as exc:
            check_cancelled()
            log.info("doorbell not rung (%s); workers look within a second", type(exc).__name__)

    async def _queue(self, part: JobKeys, level: str, task_id: str, raw: str | bytes) -> None:
        async def transaction() -> None:
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(part.job(task_id), raw, ex=JOB_TTL_S)
            pipe.xadd(part.stream(level), {"j": task_id, "t": _stamp()})
            await pipe.execute()

        await across_moves(transaction)

    async def describe(self, task_id: str) -> Job | None:
        """The task's job, from its partition or else from the queue of earlier versions."""
        raw = await self.redis.get(self.names.job(task_id))
        if raw is None:
            raw = await self.redis.get(self.names.legacy_jobs().job(task_id))
        if raw is None:
            return None
        try:
            return Job.decode(raw)
        except (ValueError, KeyError, TypeError):
            log.error("undecodable job description of task %s", task_id)
            return None

    # Taking jobs ---------------------------------------------------------------------------

    async def waiting(self, only: set[int] | None = None) -> dict[str, list[tuple[int, int]]]:
        """Per priority, the partitions with a job waiting: (when its oldest was queued,
        partition), oldest first; of the partitions in `only`, or of all."""
        count = len(self.parts)
        numbers = sorted(n for n in only if n < count) if only is not None else list(range(count))
        heads = await self._scan(numbers)
        out: dict[str, list[tuple[int, int]]] = {lv: [] for lv in LEVELS}
        lost: list[str] = []
        for p, found in zip(numbers, heads, strict=True):
            for level, head in zip(LEVELS, found, strict=True):
                if head == _NO_GROUP:
                    lost.append(self.parts[p].stream(level))
                elif head:
                    out[level].append((int(head), p))
        if lost:
            await self._create_groups(lost)
        for level in LEVELS:
            out[level].sort()
        return out

    async def _scan(self, numbers: list[int]) -> list[Any]:
        for attempt in (1, 2):
            pipe = self.redis.pipeline(transaction=False)
            for part in (self.parts[n] for n in numbers):
                pipe.evalsha(self._heads.sha, 3, *part.streams(), GROUP)
            try:
                return await pipe.execute()
            except NoScriptError:  # a restarted or new Redis node: load it and look again
                if attempt == 2:
                    raise
                await self.redis.script_load(_HEADS)
        raise AssertionError("unreachable")

    async def take(
        self, consumer: str, count: int, only: set[int] | None = None
    ) -> list[tuple[str, str]]:
        """Up to `count` waiting entries in priority order: (entry id, task id); from the
        partitions in `only` (those rung since a look found nothing at all), or from all."""
        waiting = await self.waiting(only)
        for level in LEVELS:
            if not waiting[level] and only is None:  # nothing of it waits: none passed over
                self.picker.record(level, 0)
        empty = {level for level in LEVELS if not waiting[level]}
        taken: list[tuple[str, str]] = []
        while len(taken) < count:
            step = self.picker.next_read(count - len(taken), empty)
            if step is None:
                break
            level, n = step
            got = await self._take_level(consumer, level, waiting[level], n)
            self.picker.record(level, len(got))
            if len(got) < n:
                empty.add(level)
            taken += got
        return taken

    async def _take_level(
        self, consumer: str, level: str, heads: list[tuple[int, int]], n: int
    ) -> list[tuple[str, str]]:
        """Up to `n` entries of one priority, partitions by the age of their oldest job,
        an even share from each."""
        out: list[tuple[str, str]] = []
        while heads and len(out) < n:
            share = -(-(n - len(out)) // len(heads))
            for head in list(heads):
                want = min(share, n - len(out))
                if want <= 0:
                    break
                got = await self._read(consumer, head[1], level, want)
                out += got
                if len(got) < want:
                    heads.remove(head)
        return out

    async def _read(
        self, consumer: str, partition: int, level: str, count: int
    ) -> list[tuple[str, str]]:
        stream = self.parts[partition].stream(level)
        reply: Any = await self.redis.xreadgroup(GROUP, consumer, {stream: ">"}, count=count)
        entries = reply[0][1] if reply else []  # RESP2: [[stream, entries]]
        return [(f"{partition}{_SEP}{level}{_SEP}{e}", t) for e, t in task_ids(entries)]

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[tuple[str, str]]:
        """Entries a dead consumer read but never acknowledged, highest priority first."""
        order = [(level, p) for level in LEVELS for p in self._rotation()]
        pipe = self.redis.pipeline(transaction=False)
        for level, p in order:
            pipe.xpending(self.parts[p].stream(level), GROUP)
        pending = await pipe.execute(raise_on_error=False)
        out: list[tuple[str, str]] = []
        for (level, p), info in zip(order, pending, strict=True):
            if len(out) >= count:
                break
            if not isinstance(info, dict) or not info.get("pending"):
                continue
            reply = await self.redis.xautoclaim(
                self.parts[p].stream(level),
                GROUP,
                consumer,
                min_idle_ms,
                start_id="0-0",
                count=count - len(out),
            )
            out += [(f"{p}{_SEP}{level}{_SEP}{e}", t) for e, t in task_ids(reply[1])]
        return out

    def _rotation(self) -> list[int]:
        self._turn = (self._turn + 1) % len(self.parts)
        return [(self._turn + i) % len(self.parts) for i in range(len(self.parts))]

    async def ack(self, entry_id: str) -> None:
        partition, level, raw = entry_id.split(_SEP, 2)
        stream = self.parts[int(partition)].stream(level)
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(stream, GROUP, raw)
        pipe.xdel(stream, raw)
        await pipe.execute()

    # Upgrades ------------------------------------------------------------------------------

    async def drain_legacy(self, consumer: str, min_idle_ms: int) -> int:
        """Move the jobs waiting in the single queue of earlier versions to their partitions
        (also those a dead consumer had read); returns how many were moved."""
        legacy = self.names.legacy_jobs()
        pipe = self.redis.pipeline(transaction=False)
        for level in LEVELS:
            pipe.exists(legacy.stream(level))
        present = [lv for lv, n in zip(LEVELS, await pipe.execute(), strict=True) if n]
        if not present:
            return 0
        await self._create_groups([legacy.stream(lv) for lv in present])
        moved = 0
        for level in present:
            stream = legacy.stream(level)
            stale = await self.redis.xautoclaim(
                stream, GROUP, consumer, min_idle_ms, start_id="0-0", count=100
            )
            fresh: Any = await self.redis.xreadgroup(GROUP, consumer, {stream: ">"}, count=100)
            entries = task_ids(stale[1]) + task_ids(fresh[0][1] if fresh else [])
            for entry_id, task_id in entries:
                moved += await self._move(legacy, level, entry_id, task_id)
        return moved

    async def _move(self, legacy: JobKeys, level: str, entry_id: str, task_id: str) -> int:
        """One job of the old queue into its partition, unless an older worker claimed it."""
        moved = 0
        if task_id:
            raw, claimed = await self.redis.mget([legacy.job(task_id), legacy.claim(task_id)])
            if raw is not None and claimed is None:
                await self._queue(self.names.jobs_of(task_id), level, task_id, raw)
                await self._ring(task_id)
                moved = 1
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(legacy.stream(level), GROUP, entry_id)
        pipe.xdel(legacy.stream(level), entry_id)
        await pipe.execute()
        return moved


class Doorbell:
    """The channel gateways ring with the partition of each job they queue, as a worker
    listens to it while idle. One plain pub/sub channel for the deployment: a ring is a
    few bytes per job, and a subscriber needs one connection (a Redis Cluster forwards it
    to every node)."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self.redis = redis
        self.channel = keys.jobs_ready_channel()
        self._pubsub: Any = None

    async def wait(self, timeout_s: float) -> set[int] | None:
        """The partitions rung within `timeout_s` (with every ring already waiting); None
        when none rang or the subscription was lost meanwhile: then look at them all."""
        try:
            if self._pubsub is None:
                self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(self.channel)
            rung: set[int] = set()
            message = await self._pubsub.get_message(timeout=timeout_s)
            while message is not None:
                data = message["data"] if message["type"] == "message" else b""
                if data.isdigit():  # a partition number; anything else is not a ring
                    rung.add(int(data))
                message = await self._pubsub.get_message(timeout=0)
        except (RedisError, OSError) as exc:
            check_cancelled()
            log.info("doorbell lost (%s); listening again", type(exc).__name__)
            await self.close()
            await asyncio.sleep(min(timeout_s, 0.5))
            return None
        return rung or None

    async def close(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            await close_pubsub(pubsub)
