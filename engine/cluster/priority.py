"""Priority of waiting jobs: one Redis stream per priority, read high first, with a bound on
how long a lower priority can be passed over.

Jobs wait only in the job stream (a gateway hands every task to the workers; a worker at
WORKER_CONCURRENCY leaves jobs there until a slot frees up). Each priority has its own stream
(`jobs:high`, `jobs` for normal, `jobs:low`), each first in, first out. A worker reads them
with a `PriorityPicker`: high before normal before low, except that a priority whose oldest
job has been passed over by `bound` starts of higher-priority jobs on that worker is read
first. So a waiting job at the head of its stream starts after at most `bound`
higher-priority starts on every worker that is taking jobs.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from engine.cluster.jobs import GROUP, JOB_TTL_S, Job, JobQueue, task_ids
from engine.redis_keys import RedisKeys

LEVELS = ("high", "normal", "low")  # highest first
_SEP = "/"  # entry ids handed out are `level/redis-id`


class PriorityPicker:
    """Which stream to read next, and how many entries, so that no priority waits beyond
    `bound` higher-priority starts. Pure: no I/O, one per worker."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        # higher-priority jobs started since this level was last read (served or empty)
        self.passed = dict.fromkeys(LEVELS, 0)

    def order(self) -> list[str]:
        """Levels passed over `bound` times first (the lowest first), then by priority."""
        starved = [level for level in reversed(LEVELS) if self.passed[level] >= self.bound]
        return starved + [level for level in LEVELS if level not in starved]

    def next_read(self, wanted: int, skip: set[str]) -> tuple[str, int] | None:
        """(level, count) of the next read, or None when every level is in `skip`.

        The count is capped so that no lower level (not in `skip`) is passed over more
        than `bound` times by it."""
        for level in self.order():
            if level in skip:
                continue
            below = [lv for lv in LEVELS[LEVELS.index(level) + 1 :] if lv not in skip]
            cap = min([wanted, *(self.bound - self.passed[lv] for lv in below)])
            if cap > 0:
                return level, cap
        return None

    def record(self, level: str, started: int) -> None:
        """`level` was read and `started` of its jobs taken: it is no longer passed over,
        and every lower level was passed over `started` more times."""
        self.passed[level] = 0
        for lower in LEVELS[LEVELS.index(level) + 1 :]:
            self.passed[lower] += started


class PriorityJobQueue(JobQueue):
    """The job streams of the three priorities behind JobQueue's interface."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, bound: int) -> None:
        super().__init__(redis, keys)
        self.picker = PriorityPicker(bound)

    def stream(self, level: str) -> str:
        return self.names.priority_jobs(level)

    async def ensure_group(self) -> None:
        for level in LEVELS:
            try:
                await self.redis.xgroup_create(self.stream(level), GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):  # the group exists: the normal case
                    raise

    async def enqueue(self, job: Job) -> None:
        """Store the job's description and add it to its priority's stream, atomically."""
        level = job.priority if job.priority in LEVELS else "normal"
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.names.job(job.task_id), job.encode(), ex=JOB_TTL_S)
        pipe.xadd(self.stream(level), {"j": job.task_id})
        await pipe.execute()

    async def take(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, str]]:
        """Up to `count` new entries in priority order; blocks up to `block_ms` for one
        when every stream is empty."""
        taken: list[tuple[str, str]] = []
        empty: set[str] = set()
        while len(taken) < count:
            step = self.picker.next_read(count - len(taken), empty)
            if step is None:
                break
            level, n = step
            got = await self._read(consumer, {self.stream(level): ">"}, n, None)
            self.picker.record(level, len(got))
            if len(got) < n:
                empty.add(level)
            taken += got
        if taken or block_ms <= 0:
            return taken
        # Every stream was empty: wait for the first job of any priority (one at most, so
        # a worker never takes more than it has room for).
        got = await self._read(consumer, {self.stream(lv): ">" for lv in LEVELS}, 1, block_ms)
        for entry_id, _task in got:
            self.picker.record(entry_id.split(_SEP, 1)[0], 1)
        return got

    async def _read(
        self, consumer: str, streams: dict[str, str], count: int, block_ms: int | None
    ) -> list[tuple[str, str]]:
        wanted: dict[Any, Any] = dict(streams)
        reply: Any = await self.redis.xreadgroup(
            GROUP, consumer, wanted, count=count, block=block_ms
        )
        out: list[tuple[str, str]] = []
        for name, entries in reply or []:
            level = self._level_of(name.decode() if isinstance(name, bytes) else str(name))
            out += [(f"{level}{_SEP}{e}", t) for e, t in task_ids(entries)]
        return out

    def _level_of(self, stream: str) -> str:
        return next((lv for lv in LEVELS if self.stream(lv) == stream), "normal")

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[tuple[str, str]]:
        """Entries a dead consumer read but never acknowledged, highest priority first."""
        out: list[tuple[str, str]] = []
        for level in LEVELS:
            if len(out) >= count:
                break
            reply = await self.redis.xautoclaim(
                self.stream(level),
                GROUP,
                consumer,
                min_idle_ms,
                start_id="0-0",
                count=count - len(out),
            )
            out += [(f"{level}{_SEP}{e}", t) for e, t in task_ids(reply[1])]
        return out

    async def ack(self, entry_id: str) -> None:
        level, _, raw = entry_id.partition(_SEP)
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.stream(level), GROUP, raw)
        pipe.xdel(self.stream(level), raw)
        await pipe.execute()
