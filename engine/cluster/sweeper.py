"""End tasks that no runner will end: lost with their worker, or cancelled before starting.

The sweeper of every node looks for leases whose heartbeat stopped; exactly one sweeper
takes each (engine/cluster/jobs.py) and ends the task `failed` (`internal`, retryable) with the
partial text its history stream holds, then writes the terminal record so subscribers get
`task_done`. The same ending serves a task cancelled before any worker started it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import asyncpg
from redis.exceptions import RedisError

from db import tasks as task_rows
from engine.accounts.quotas import Reservation
from engine.aio import check_cancelled
from engine.cluster.jobs import Job, JobQueue, Leases
from engine.errors import InvalidRequest
from engine.providers.base import Usage, estimate_tokens
from engine.providers.registry import ProviderRegistry
from engine.stream.keys import CHUNK, DONE, decode_record
from engine.tasks.runner import RunnerDeps, _finalize_with_retries, done_payload, publish_done
from engine.tasks.service import done_from_row

log = logging.getLogger(__name__)

LOST = {"code": "internal", "message": "the node running the task stopped", "retryable": True}


@dataclass(frozen=True)
class Ending:
    status: str
    finish_reason: str
    error: dict[str, Any] | None
    event: str


WORKER_LOST = Ending("failed", "error", LOST, "lease expired: the worker stopped")
NEVER_HANDED_OVER = Ending(
    "failed",
    "error",
    {
        "code": "internal",
        "retryable": True,
        "message": "the node that accepted the task stopped before handing it over",
    },
    "no job and no lease found for a running task",
)
CANCELLED_BEFORE_START = Ending("cancelled", "cancelled", None, "cancelled before it started")


async def read_history(deps: RunnerDeps, task_id: str) -> tuple[str, int, bool]:
    """(text so far, last seq, whether the terminal record is there) from the history."""
    raw = cast(
        list[tuple[bytes, dict[bytes, bytes]]], await deps.redis.xrange(deps.keys.history(task_id))
    )
    parts: list[str] = []
    last_seq, ended = 0, False
    for _, fields in raw:
        kind, payload = decode_record(fields[b"r"])
        if kind == CHUNK and payload["seq"] > last_seq:
            parts.append(payload["text"])
            last_seq = payload["seq"]
        elif kind == DONE:
            ended = True
    return "".join(parts), last_seq, ended


async def end_task(
    deps: RunnerDeps, registry: ProviderRegistry, task_id: str, job: Job | None, ending: Ending
) -> bool:
    """Finalize a task no runner holds and publish its terminal record; True if it landed."""
    text, last_seq, ended = await read_history(deps, task_id)
    row = await task_rows.get_task_unscoped(deps.pool, UUID(task_id))
    if row is None or ended:
        return False
    messages = job.messages if job else row["request"].get("messages", [])
    usage = Usage(
        sum(estimate_tokens(m.get("content", "")) for m in messages), estimate_tokens(text)
    )
    try:
        provider, _ = registry.resolve(f"{row['provider']}/{row['model']}")
        cost = provider.price(row["model"], usage)
    except InvalidRequest:
        cost = None
    at = datetime.now(UTC).isoformat()
    level, kind = ("error", "error") if ending.error else ("info", "cancelled")
    events: list[dict[str, Any]] = [
        {"at": at, "level": level, "kind": kind, "message": ending.event, "metadata": {}},
        {
            "at": at,
            "level": "info",
            "kind": "finalized",
            "message": "",
            "metadata": {"status": ending.status, "last_seq": last_seq},
        },
    ]
    outcome = task_rows.TaskOutcome(
        status=ending.status,
        text=text,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        usage_source="estimated",
        cost_usd=cost,
        last_seq=last_seq,
        ttft_ms=None,
        latency_ms=_latency_ms(row),
        finish_reason=ending.finish_reason,
        error=ending.error,
        validation_status="skipped",
        run_messages=[*(job.new_messages if job else []), {"role": "assistant", "content": text}],
        events=events,
    )
    landed = await _finalize_with_retries(deps.pool, UUID(task_id), outcome)
    if landed:
        payload = done_payload(
            task_id=task_id,
            run_id=row["run_id"],
            status=ending.status,
            text=text,
            last_seq=last_seq,
            finish_reason=ending.finish_reason,
            provider=row["provider"],
            model=row["model"],
            usage=usage,
            cost=cost,
            ttft_ms=None,
            latency_ms=outcome.latency_ms,
            validation={"status": "skipped", "errors": []},
            error=ending.error,
        )
    else:  # ended meanwhile by its runner, which died before writing the terminal record
        final = await task_rows.get_task_unscoped(deps.pool, UUID(task_id))
        assert final is not None
        payload = done_from_row(final)
    await publish_done(deps.redis, deps.keys, task_id, payload, deps.history_ttl_s)
    await _free_slot(deps, job, landed and ending.status == "failed" and last_seq == 0)
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

    async def sweep_once(self) -> int:
        """End every task whose lease has expired; returns how many this node ended."""
        ended = 0
        for task_id in await self.leases.expired():
            if not await self.leases.take_expired(task_id):
                continue  # another node's sweeper took it
            log.warning("lease of task %s expired; ending it as failed", task_id)
            try:
                job = await self.queue.describe(task_id)
                if await end_task(self.deps, self.registry, task_id, job, WORKER_LOST):
                    ended += 1
            except BaseException:
                await self.leases.restore_expired(task_id)  # the next sweep tries again
                raise
        return ended

    async def reconcile_once(self) -> int:
        """End tasks the database says run but Redis knows nothing of (their node died between
        recording and handing them over, or Redis lost its data); returns how many."""
        stale = [
            str(t) for t in await task_rows.list_stale_running(self.deps.pool, self.interval_s * 4)
        ]
        if not stale:
            return 0
        ended = 0
        for task_id, known in zip(stale, await self.leases.handed_over(stale), strict=True):
            if known or not await self.leases.claim(task_id, holder="orphan"):
                continue
            log.warning("task %s runs nowhere; ending it as failed", task_id)
            if await end_task(self.deps, self.registry, task_id, None, NEVER_HANDED_OVER):
                ended += 1
        return ended

    async def run(self) -> None:
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
