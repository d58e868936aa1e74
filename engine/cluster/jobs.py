"""Hand-off of tasks between nodes through Redis: the job description, start claims and
leases (the job streams themselves are engine/cluster/queue.py).

A worker that reads a job first *claims* the task (SET NX): only the claimer runs it, so a
job delivered twice (re-delivery after a crash) still runs once. The claim comes with a
*lease*, a deadline in a sorted set that the worker's heartbeat keeps moving; a lease left
to expire means its worker died, and any node's sweeper ends the task (engine/cluster/sweeper.py).
Claims and leases live in the task's partition of the job queue (engine/redis_keys.py), one
lease set per partition; the lease set of the single queue of earlier versions is swept too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import ClusterError, NoScriptError, TryAgainError

from engine.accounts.quotas import Reservation
from engine.providers.base import ProviderRequest
from engine.providers.registry import ProviderRegistry
from engine.redis_batch import redis_batch, send
from engine.redis_keys import JobKeys, RedisKeys
from engine.tasks.plan import Candidate, KeySource, TaskPlan

log = logging.getLogger(__name__)

T = TypeVar("T")

GROUP = "workers"
JOB_TTL_S = 24 * 3600  # the job description outlives any task
SWEPT = "swept"  # claim value once a sweeper has ended the task
MOVE_WAIT_S = 5.0  # how long a hand-off waits for a slot being migrated


async def across_moves(call: Callable[[], Awaitable[T]]) -> T:
    """Run a transaction or script over several keys of one slot, again while the slot is
    being migrated between masters (a reshard): its keys are then split between the two,
    and Redis answers TRYAGAIN until the move ends, longer than the client's own retries
    last. Gives up (raises) after MOVE_WAIT_S; a cluster that is down fails the same way."""
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + MOVE_WAIT_S, 0.05
    while True:
        try:
            return await call()
        except (ClusterError, TryAgainError):
            if loop.time() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


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
        # Its fields are plain JSON values: no deep copy (asdict) needed to write them.
        return json.dumps(vars(self), separators=(",", ":"), ensure_ascii=False)

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


def task_ids(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[str, str]]:
    out = []
    for entry_id, fields in entries:
        if fields is None:  # deleted meanwhile
            continue
        out.append((entry_id.decode(), fields.get(b"j", b"").decode()))
    return out


class Leases:
    """Start claims and heartbeated leases of running tasks, in each task's partition."""

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

    def lease_sets(self) -> list[JobKeys]:
        """Every partition, then the single queue of earlier versions (swept after an upgrade)."""
        return [*self.names.job_partition_list(), self.names.legacy_jobs()]

    async def claim(self, task_id: str, holder: str | None = None) -> bool:
        """Become the only node that starts the task; with a lease unless `holder` is given."""
        part = self.names.jobs_of(task_id)
        keys = [part.claim(task_id), part.leases()]
        if holder is not None:  # claimed to end it without running it (cancel before start)
            return bool(await self.redis.set(keys[0], holder, nx=True, ex=JOB_TTL_S))
        won = await across_moves(
            lambda: self._claim(
                keys=keys, args=[self.node_id, JOB_TTL_S, self._deadline(), task_id]
            )
        )
        return bool(won)

    async def renew(self, task_ids: list[str]) -> list[str]:
        """Move the leases of these tasks on; returns the ones this node no longer holds.

        One script per partition (a script touches one slot)."""
        groups: dict[JobKeys, list[str]] = {}
        for task_id in task_ids:
            groups.setdefault(self.names.jobs_of(task_id), []).append(task_id)
        deadline = self._deadline()
        lost: list[str] = []
        for part, tasks in groups.items():
            keys = [part.leases(), *(part.claim(t) for t in tasks)]
            got = await self._renew(keys=keys, args=[self.node_id, deadline, *tasks])
            lost += [t.decode() if isinstance(t, bytes) else str(t) for t in got]
        return lost

    async def claim_new(self, job: Job) -> bool:
        """Store the description of a job this node runs itself (for a sweeper) and claim
        it: in one round trip, the tick's pipeline, on a plain Redis."""
        part = self.names.jobs_of(job.task_id)
        batch = redis_batch(self.redis)
        if batch is None:
            await self.redis.set(part.job(job.task_id), job.encode(), ex=JOB_TTL_S)
            return await self.claim(job.task_id)
        keys = [part.claim(job.task_id), part.leases()]
        args: list[Any] = [self.node_id, JOB_TTL_S, self._deadline(), job.task_id]
        stored, won = await batch.calls(
            ("SET", part.job(job.task_id), job.encode(), "EX", JOB_TTL_S),
            ("EVALSHA", self._claim.sha, len(keys), *keys, *args),
        )
        if isinstance(stored, Exception):
            raise stored
        if isinstance(won, NoScriptError):  # Redis lost the script: its own call loads it
            won = await self._claim(keys=keys, args=args)
        elif isinstance(won, Exception):
            raise won
        return bool(won)

    async def release(self, task_id: str) -> None:
        await send(self.redis, "ZREM", self.names.jobs_of(task_id).leases(), task_id)

    async def expired(self, limit: int = 100) -> list[tuple[JobKeys, str]]:
        """Expired leases of every lease set: (the set's partition, task id)."""
        now, parts = time.time(), self.lease_sets()
        pipe = self.redis.pipeline(transaction=False)
        for part in parts:
            pipe.zrangebyscore(part.leases(), "-inf", now, start=0, num=limit)
        found = await pipe.execute()
        return [
            (part, t.decode() if isinstance(t, bytes) else str(t))
            for part, ids in zip(parts, found, strict=True)
            for t in ids
        ]

    async def take_expired(self, part: JobKeys, task_id: str) -> bool:
        """True for exactly one sweeper of an expired lease."""
        keys = [part.leases(), part.claim(task_id)]
        return bool(await self._sweep(keys=keys, args=[task_id, JOB_TTL_S]))

    async def handed_over(self, task_ids: list[str]) -> list[bool]:
        """Whether each task has a job description or a claim (was handed to a runner), in
        its partition or in the single queue of earlier versions."""
        legacy = self.names.legacy_jobs()
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            part = self.names.jobs_of(task_id)
            pipe.exists(part.job(task_id), part.claim(task_id))
            pipe.exists(legacy.job(task_id), legacy.claim(task_id))
        found = await pipe.execute()
        return [bool(found[i] or found[i + 1]) for i in range(0, len(found), 2)]

    async def restore_expired(self, part: JobKeys, task_id: str) -> None:
        """Put back a lease taken by a sweep that failed, already expired."""
        await self.redis.zadd(part.leases(), {task_id: 0})

    async def request_cancel(self, task_id: str) -> None:
        await self.redis.set(self.names.cancel_flag(task_id), "1", ex=JOB_TTL_S)

    async def cancel_requested(self, task_ids: list[str]) -> list[str]:
        if not task_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)  # one GET each: flags span partitions
        for task_id in task_ids:
            pipe.get(self.names.cancel_flag(task_id))
        flags = await pipe.execute()
        return [t for t, flag in zip(task_ids, flags, strict=True) if flag is not None]
