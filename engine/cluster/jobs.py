"""Hand-off of tasks between nodes through Redis: the job stream, start claims and leases.

A gateway writes a job into one Redis stream read by the consumer group of all workers.
A worker that reads a job first *claims* the task (SET NX): only the claimer runs it, so a
job delivered twice (re-delivery after a crash) still runs once. The claim comes with a
*lease*, a deadline in a sorted set that the worker's heartbeat keeps moving; a lease left
to expire means its worker died, and any node's sweeper ends the task (engine/cluster/sweeper.py).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from engine.accounts.quotas import Reservation
from engine.providers.base import ProviderRequest
from engine.providers.registry import ProviderRegistry
from engine.redis_keys import RedisKeys
from engine.tasks.plan import Candidate, KeySource, TaskPlan

log = logging.getLogger(__name__)

GROUP = "workers"
JOB_TTL_S = 24 * 3600  # the job description outlives any task
SWEPT = "swept"  # claim value once a sweeper has ended the task


@dataclass(frozen=True)
class Job:
    """What a worker needs to run a task the gateway has already recorded."""

    task_id: str
    run_id: str | None
    user_id: str
    provider: str
    model: str
    messages: list[dict[str, Any]]
    settings: dict[str, Any]
    new_messages: list[dict[str, Any]]
    # What the gateway decided beyond the request: output validations, fallback
    # models as `provider/model`, whether the user's own provider keys are used
    # (byok) and the quota unit to settle at the end.
    validations: list[dict[str, Any]] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    byok: bool = False
    reservation: dict[str, str] | None = None
    priority: str = "normal"  # which job stream it waits in (engine/cluster/priority.py)
    parent_task_id: str | None = None  # a continuation: the task whose tool results it sends
    step: int = 1

    @classmethod
    def from_plan(cls, plan: TaskPlan) -> Job:
        return cls(
            task_id=str(plan.task_id),
            run_id=str(plan.run_id) if plan.run_id else None,
            user_id=str(plan.user_id),
            provider=plan.provider_name,
            model=plan.request.model,
            messages=plan.request.messages,
            settings=plan.request.settings,
            new_messages=plan.new_messages,
            validations=plan.validations,
            fallbacks=[f"{c.provider.name}/{c.model}" for c in plan.fallbacks],
            byok=plan.keys is not None,
            reservation=asdict(plan.reservation) if plan.reservation else None,
            priority=plan.priority,
            parent_task_id=str(plan.parent_task_id) if plan.parent_task_id else None,
            step=plan.step,
        )

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def decode(cls, raw: str | bytes) -> Job:
        """Raises ValueError (or KeyError/TypeError) for a record that is not a job."""
        data = json.loads(raw)
        return cls(**data)

    def to_plan(self, registry: ProviderRegistry, keys: KeySource | None = None) -> TaskPlan:
        """The runner's plan; adapters come from this node's registry, and `keys` is the
        user's key source when the job says the user brings their own keys."""
        provider, model = registry.resolve(f"{self.provider}/{self.model}")
        fallbacks = tuple(Candidate(*registry.resolve(ref)) for ref in self.fallbacks)
        return TaskPlan(
            task_id=UUID(self.task_id),
            run_id=UUID(self.run_id) if self.run_id else None,
            user_id=UUID(self.user_id),
            provider=provider,
            provider_name=provider.name,
            request=ProviderRequest(model=model, messages=self.messages, settings=self.settings),
            new_messages=self.new_messages,
            validations=self.validations,
            fallbacks=fallbacks,
            keys=keys if self.byok else None,
            reservation=Reservation(**self.reservation) if self.reservation else None,
            priority=self.priority,
            parent_task_id=UUID(self.parent_task_id) if self.parent_task_id else None,
            step=self.step,
        )


# KEYS: claim, leases. ARGV: node, ttl, deadline, task_id. 1 when this node won the task.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
    return 1
end
return 0
"""

# KEYS: leases, claim of each task. ARGV: node, deadline, task ids. Returns the lost ones.
# A lease missing while the claim is still ours, or lease and claim both missing (Redis
# lost its data), is put back; only a claim someone else holds (a sweeper) means lost.
_RENEW = """
local lost = {}
for i = 3, #ARGV do
    local task = ARGV[i]
    local claim = KEYS[i - 1]
    if redis.call('ZSCORE', KEYS[1], task) or redis.call('GET', claim) == ARGV[1]
        or redis.call('SET', claim, ARGV[1], 'NX', 'EX', 86400) then
        redis.call('ZADD', KEYS[1], ARGV[2], task)
    else
        table.insert(lost, task)
    end
end
return lost
"""

# KEYS: leases, claim. ARGV: task_id, ttl. 1 when this sweeper took the expired lease.
_SWEEP = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
    redis.call('SET', KEYS[2], 'swept', 'EX', ARGV[2])
    return 1
end
return 0
"""


class JobQueue:
    """The job stream and its consumer group."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self.redis = redis
        self.names = keys

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.names.jobs(), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists: the normal case
                raise

    async def enqueue(self, job: Job) -> None:
        """Store the job's description and hand it to the workers, in one transaction."""
        raw = job.encode()
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.names.job(job.task_id), raw, ex=JOB_TTL_S)
        pipe.xadd(self.names.jobs(), {"j": job.task_id})
        await pipe.execute()

    async def remember(self, job: Job) -> None:
        """Store the description of a job this node runs itself (for a sweeper)."""
        await self.redis.set(self.names.job(job.task_id), job.encode(), ex=JOB_TTL_S)

    async def describe(self, task_id: str) -> Job | None:
        raw = await self.redis.get(self.names.job(task_id))
        if raw is None:
            return None
        try:
            return Job.decode(raw)
        except (ValueError, KeyError, TypeError):
            log.error("undecodable job description of task %s", task_id)
            return None

    async def take(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, str]]:
        """New entries for this consumer: (entry id, task id)."""
        reply: Any = await self.redis.xreadgroup(
            GROUP, consumer, {self.names.jobs(): ">"}, count=count, block=block_ms
        )
        return task_ids(reply[0][1] if reply else [])  # RESP2: [[stream, entries]]

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[tuple[str, str]]:
        """Entries another consumer read but never acknowledged (it died before claiming)."""
        reply = await self.redis.xautoclaim(
            self.names.jobs(), GROUP, consumer, min_idle_ms, start_id="0-0", count=count
        )
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], reply[1])
        return task_ids(entries)

    async def ack(self, entry_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.names.jobs(), GROUP, entry_id)
        pipe.xdel(self.names.jobs(), entry_id)
        await pipe.execute()


def task_ids(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[str, str]]:
    out = []
    for entry_id, fields in entries:
        if fields is None:  # deleted meanwhile
            continue
        out.append((entry_id.decode(), fields.get(b"j", b"").decode()))
    return out


class Leases:
    """Start claims and heartbeated leases of running tasks."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, node_id: str, ttl_s: float) -> None:
        self.redis = redis
        self.names = keys
        self.node_id = node_id
        self.ttl_s = ttl_s
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._sweep = redis.register_script(_SWEEP)

    def _deadline(self) -> float:
        return time.time() + self.ttl_s

    async def claim(self, task_id: str, holder: str | None = None) -> bool:
        """Become the only node that starts the task; with a lease unless `holder` is given."""
        keys = [self.names.claim(task_id), self.names.leases()]
        if holder is not None:  # claimed to end it without running it (cancel before start)
            return bool(await self.redis.set(keys[0], holder, nx=True, ex=JOB_TTL_S))
        won = await self._claim(
            keys=keys, args=[self.node_id, JOB_TTL_S, self._deadline(), task_id]
        )
        return bool(won)

    async def renew(self, task_ids: list[str]) -> list[str]:
        """Move the leases of these tasks on; returns the ones this node no longer holds."""
        if not task_ids:
            return []
        keys = [self.names.leases(), *(self.names.claim(t) for t in task_ids)]
        lost = await self._renew(keys=keys, args=[self.node_id, self._deadline(), *task_ids])
        return [t.decode() if isinstance(t, bytes) else str(t) for t in lost]

    async def release(self, task_id: str) -> None:
        await self.redis.zrem(self.names.leases(), task_id)

    async def expired(self, limit: int = 100) -> list[str]:
        ids = await self.redis.zrangebyscore(
            self.names.leases(), "-inf", time.time(), start=0, num=limit
        )
        return [t.decode() if isinstance(t, bytes) else str(t) for t in ids]

    async def take_expired(self, task_id: str) -> bool:
        """True for exactly one sweeper of an expired lease."""
        keys = [self.names.leases(), self.names.claim(task_id)]
        return bool(await self._sweep(keys=keys, args=[task_id, JOB_TTL_S]))

    async def handed_over(self, task_ids: list[str]) -> list[bool]:
        """Whether each task has a job description or a claim (was handed to a runner)."""
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.exists(self.names.job(task_id), self.names.claim(task_id))
        return [bool(n) for n in await pipe.execute()]

    async def restore_expired(self, task_id: str) -> None:
        """Put back a lease taken by a sweep that failed, already expired."""
        await self.redis.zadd(self.names.leases(), {task_id: 0})

    async def request_cancel(self, task_id: str) -> None:
        await self.redis.set(self.names.cancel_flag(task_id), "1", ex=JOB_TTL_S)

    async def cancel_requested(self, task_ids: list[str]) -> list[str]:
        if not task_ids:
            return []
        flags = await self.redis.mget([self.names.cancel_flag(t) for t in task_ids])
        return [t for t, flag in zip(task_ids, flags, strict=True) if flag is not None]
