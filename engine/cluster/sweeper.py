"""End tasks that no runner will end: lost with their worker, or cancelled before starting.

The sweeper of every node looks for leases whose heartbeat stopped, in the lease set of
every partition of the job queue (and of the single queue of earlier versions); exactly one
sweeper takes each (engine/cluster/jobs.py) and ends the task `failed` (`internal`,
retryable) with the partial text its history stream holds, then writes the terminal record
so subscribers get `task_done`. The same ending serves a task cancelled before any worker
started it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from redis.exceptions import RedisError

from db import tasks as task_rows
from db.pool import count_as_background
from engine.accounts.quotas import Reservation
from engine.aio import check_cancelled
from engine.cluster.jobs import Job, Leases
from engine.cluster.queue import JobQueue
from engine.errors import InternalError, InvalidRequest
from engine.providers.base import estimate_tokens
from engine.providers.registry import ProviderRegistry
from engine.status import TaskStatus
from engine.stream.history import read_partial
from engine.tasks.finalize import (
    Ending,
    TaskEnd,
    done_from_row,
    error_payload,
    publish_done,
    task_event,
    write_outcome,
)
from engine.tasks.plan import RunnerDeps
from engine.usage import Usage

log = logging.getLogger(__name__)

WORKER_LOST = Ending(
    TaskStatus.FAILED,
    "error",
    error_payload(InternalError("the node running the task stopped"), retryable=True),
    "lease expired: the worker stopped",
)
NEVER_HANDED_OVER = Ending(
    TaskStatus.FAILED,
    "error",
    error_payload(
        InternalError("the node that accepted the task stopped before handing it over"),
        retryable=True,
    ),
    "no job and no lease found for a running task",
)
CANCELLED_BEFORE_START = Ending(
    TaskStatus.CANCELLED, "cancelled", None, "cancelled before it started"
)


async def end_task(
    deps: RunnerDeps, registry: ProviderRegistry, task_id: str, job: Job | None, ending: Ending
) -> bool:
    """Finalize a task no runner holds and publish its terminal record; True if it landed."""
    partial = await read_partial(deps.redis, deps.keys, task_id)
    row = await task_rows.get_task_unscoped(deps.pool, UUID(task_id))
    if row is None or partial.ended:
        return False
    messages = job.messages if job else row["request"].get("messages", [])
    thought = estimate_tokens(partial.reasoning)
    usage = Usage(
        sum(estimate_tokens(m.get("content", "")) for m in messages),
        estimate_tokens(partial.text) + thought,
        reasoning_tokens=thought,
    )
    try:
        provider, _ = registry.resolve(f"{row['provider']}/{row['model']}")
        cost = provider.price(row["model"], usage)
    except InvalidRequest:
        cost = None
    level, kind = ("error", "error") if ending.error else ("info", "cancelled")
    end = TaskEnd(
        task_id=task_id,
        run_id=row["run_id"],
        status=ending.status,
        finish_reason=ending.finish_reason,
        text=partial.text,
        reasoning=partial.reasoning or None,
        last_seq=partial.last_seq,
        provider=row["provider"],
        model=row["model"],
        usage=usage,
        cost=cost,
        latency_ms=_latency_ms(row),
        error=ending.error,
        run_messages=[
            *(job.new_messages if job else []),
            {"role": "assistant", "content": partial.text},
        ],
        events=[
            task_event(kind, ending.event, level),
            task_event("finalized", status=ending.status, last_seq=partial.last_seq),
        ],
    )
    landed = await write_outcome(deps.pool, UUID(task_id), end.outcome())
    if landed:
        payload = end.payload()
    else:  # ended meanwhile by its runner, which died before writing the terminal record
        final = await task_rows.get_task_unscoped(deps.pool, UUID(task_id))
        assert final is not None
        payload = done_from_row(final)
    await publish_done(deps.redis, deps.keys, task_id, payload, deps.history_ttl_s, deps.local)
    await _free_slot(
        deps, job, landed and ending.status == TaskStatus.FAILED and partial.last_seq == 0
    )
    return landed


async def _free_slot(deps: RunnerDeps, job: Job | None, give_back: bool) -> None:
    """Whoever ends a task frees its running slot (and, if it never streamed, its unit)."""
    if deps.quotas is not None and job is not None and job.reservation is not None:
        await deps.quotas.settle(Reservation(**job.reservation), give_back=give_back)


def _latency_ms(row: asyncpg.Record) -> int:
    started = row["started_at"] or row["created_at"]
    return max(0, int((datetime.now(UTC) - started).total_seconds() * 1000))


class Sweeper:
    """Ends the tasks of dead workers; runs on every node."""

    def __init__(
        self,
        deps: RunnerDeps,
        registry: ProviderRegistry,
        leases: Leases,
        queue: JobQueue,
        interval_s: float,
    ) -> None:
        self.deps = deps
        self.registry = registry
        self.leases = leases
        self.queue = queue
        self.interval_s = interval_s
        self._suspects: set[str] = set()  # seen unknown to Redis by the last reconcile

    async def sweep_once(self) -> int:
        """End every task whose lease has expired; returns how many this node ended."""
        ended = 0
        for part, task_id in await self.leases.expired():
            if not await self.leases.take_expired(part, task_id):
                continue  # another node's sweeper took it
            log.warning("lease of task %s expired; ending it as failed", task_id)
            try:
                job = await self.queue.describe(task_id)
                if await end_task(self.deps, self.registry, task_id, job, WORKER_LOST):
                    ended += 1
            except BaseException:
                await self.leases.restore_expired(part, task_id)  # the next sweep tries again
                raise
        return ended

    async def reconcile_once(self) -> int:
        """End tasks the database says run but Redis knows nothing of (their node died between
        recording and handing them over, or Redis lost its data); returns how many."""
        stale = [
            str(t) for t in await task_rows.list_stale_running(self.deps.pool, self.interval_s * 4)
        ]
        if not stale:
            self._suspects = set()
            return 0
        ended = 0
        suspects, self._suspects = self._suspects, set()
        for task_id, known in zip(stale, await self.leases.handed_over(stale), strict=True):
            if known:
                continue
            if task_id not in suspects:  # seen once: after Redis lost its data, the
                self._suspects.add(task_id)  # runner's next heartbeat claims it again
                continue
            if not await self.leases.claim(task_id, holder="orphan"):
                continue
            log.warning("task %s runs nowhere; ending it as failed", task_id)
            if await end_task(self.deps, self.registry, task_id, None, NEVER_HANDED_OVER):
                ended += 1
        return ended

    async def run(self) -> None:
        count_as_background()  # its statements are not counted as the tasks'
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep_once()
                await self.reconcile_once()
            except (
                RedisError,
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                TimeoutError,
            ) as exc:
                check_cancelled()
                log.warning("sweep failed (%s); trying again later", type(exc).__name__)
