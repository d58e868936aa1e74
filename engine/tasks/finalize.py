"""A task's end, whoever ends it (its runner, a sweeper, a node that could not hand it over):
the outcome row, the `task_done` payload, the idempotent write and the terminal record.

`TaskEnd` holds what is known at the end; `outcome()` is what Postgres stores and
`payload()` is the `task_done` event (docs/protocol.md), so the two never disagree.
`done_from_row` rebuilds the same payload from a stored row.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from db import tasks as task_rows
from db.pool import DATABASE_DOWN
from engine.errors import PromptrelayError
from engine.providers.pricing import format_money
from engine.redis_batch import redis_batch
from engine.redis_keys import RedisKeys
from engine.stream.live import publish_live
from engine.stream.local import LocalFeed
from engine.stream.records import DONE, encode_done
from engine.usage import Usage

log = logging.getLogger(__name__)

SKIPPED_VALIDATION: dict[str, Any] = {"status": "skipped", "errors": []}


def error_payload(exc: PromptrelayError, retryable: bool | None = None) -> dict[str, Any]:
    """The `error` of a failed task: code, safe message, whether trying again may help."""
    return {
        "code": exc.code,
        "message": exc.message,
        "retryable": exc.retryable if retryable is None else retryable,
    }


def task_event(
    kind: str, message: str = "", level: str = "info", **metadata: Any
) -> dict[str, Any]:
    """One entry of a task's execution log (`task_events`)."""
    return {
        "at": datetime.now(UTC).isoformat(),
        "level": level,
        "kind": kind,
        "message": message,
        "metadata": metadata,
    }


@dataclass(frozen=True)
class Ending:
    """How a task that no runner holds is ended, and the log line that says why."""

    status: str
    finish_reason: str
    error: dict[str, Any] | None
    event: str


@dataclass
class TaskEnd:
    """Everything known about a task when it ends."""

    task_id: str
    run_id: UUID | None
    status: str
    finish_reason: str
    text: str
    last_seq: int
    provider: str
    model: str
    usage: Usage
    cost: Decimal | None
    latency_ms: int
    ttft_ms: int | None = None
    usage_source: str = "estimated"
    error: dict[str, Any] | None = None
    validation: dict[str, Any] = field(default_factory=lambda: dict(SKIPPED_VALIDATION))
    run_messages: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] | None = None  # the calls the answer asked for
    next_task_id: UUID | None = None  # the continuation that sends their results
    refusal: str | None = None  # the provider declined to answer
    reasoning: str | None = None  # the model's reasoning text, apart from `text`

    def outcome(self) -> task_rows.TaskOutcome:
        """The row the finalize statement writes."""
        return task_rows.TaskOutcome(
            status=self.status,
            text=self.text,
            input_tokens=self.usage.input_tokens,
            output_tokens=self.usage.output_tokens,
            reasoning_tokens=self.usage.reasoning_tokens,
            reasoning=self.reasoning,
            usage_source=self.usage_source,
            cost_usd=self.cost,
            last_seq=self.last_seq,
            ttft_ms=self.ttft_ms,
            latency_ms=self.latency_ms,
            finish_reason=self.finish_reason,
            error=self.error,
            validation_status=self.validation["status"],
            run_messages=self.run_messages,
            events=self.events,
            validation_errors=self.validation["errors"],
            tool_calls=self.tool_calls,
            next_task_id=self.next_task_id,
        )

    def payload(self) -> dict[str, Any]:
        """The `task_done` event."""
        return done_payload(
            task_id=self.task_id,
            run_id=self.run_id,
            status=self.status,
            text=self.text,
            last_seq=self.last_seq,
            finish_reason=self.finish_reason,
            provider=self.provider,
            model=self.model,
            usage=self.usage,
            cost=self.cost,
            ttft_ms=self.ttft_ms,
            latency_ms=self.latency_ms,
            validation=self.validation,
            error=self.error,
            tool_calls=self.tool_calls,
            next_task_id=self.next_task_id,
            refusal=self.refusal,
            reasoning=self.reasoning,
        )


def done_payload(
    *,
    task_id: str,
    run_id: UUID | None,
    status: str,
    text: str,
    last_seq: int,
    finish_reason: str | None,
    provider: str,
    model: str,
    usage: Usage | None,
    cost: Decimal | None,
    ttft_ms: int | None,
    latency_ms: int | None,
    validation: dict[str, Any],
    error: dict[str, Any] | None,
    tool_calls: list[dict[str, Any]] | None = None,
    next_task_id: UUID | None = None,
    refusal: str | None = None,
    reasoning: str | None = None,
) -> dict[str, Any]:
    """The `task_done` event (engine.protocol.responses.TaskDone) as a plain dict; a task
    whose answer asked for tools also has `tool_calls` and `next_task_id`, one the provider
    declined to answer its `refusal`. `reasoning` is the model's whole reasoning text (null
    when it streamed none)."""
    payload: dict[str, Any] = {
        "task_id": task_id,
        "run_id": str(run_id) if run_id else None,
        "status": status,
        "text": text,
        "last_seq": last_seq,
        "finish_reason": finish_reason,
        "provider": provider,
        "model": model,
        "usage": None
        if usage is None
        else {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
        "cost_usd": None if cost is None else format_money(cost),
        "ttft_ms": ttft_ms,
        "latency_ms": latency_ms,
        "validation": validation,
        "error": error,
        "reasoning": reasoning,
    }
    if tool_calls is not None:
        payload["tool_calls"] = tool_calls
        payload["next_task_id"] = str(next_task_id) if next_task_id else None
    if refusal is not None:
        payload["refusal"] = refusal
    return payload


def done_from_row(row: asyncpg.Record) -> dict[str, Any]:
    """The `task_done` of an ended task, rebuilt from its `ai_tasks` row."""
    usage = None
    if row["input_tokens"] is not None:
        usage = Usage(
            row["input_tokens"],
            row["output_tokens"],
            reasoning_tokens=row.get("reasoning_tokens") or 0,
        )
    return done_payload(
        task_id=str(row["task_id"]),
        run_id=row["run_id"],
        status=row["status"],
        text=row["response_text"] or "",
        last_seq=row["last_seq"],
        finish_reason=row["finish_reason"],
        provider=row["provider"],
        model=row["model"],
        usage=usage,
        cost=row["cost_usd"],
        ttft_ms=row["ttft_ms"],
        latency_ms=row["latency_ms"],
        validation={
            "status": row["validation_status"] or "skipped",
            "errors": row["validation_errors"],
        },
        error=row["error"],
        tool_calls=row.get("tool_calls"),
        next_task_id=row.get("next_task_id"),
        reasoning=row.get("reasoning_text"),
    )


async def write_outcome(
    pool: asyncpg.Pool, task_id: UUID, outcome: task_rows.TaskOutcome, attempts: int = 6
) -> bool:
    """Write the outcome, trying again while Postgres blinks (the write is idempotent).

    False when the task had already ended before the first attempt (someone else ended it).
    """
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            # After a dropped connection the earlier attempt may have committed.
            return await task_rows.finalize_task(pool, task_id, outcome) or attempt > 1
        except DATABASE_DOWN as exc:
            if attempt == attempts:
                raise
            log.warning("finalize of task %s failed (%s); retrying", task_id, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    return False  # not reached: the last attempt returns or raises


# The terminal record on a plain Redis, as the transaction below does on a cluster (where
# the live channel is a sharded one). KEYS: history. ARGV: record, ttl, live channel.
_DONE = """
redis.call('XADD', KEYS[1], '*', 'r', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 0
"""
_DONE_SHA = hashlib.sha1(_DONE.encode()).hexdigest()


async def publish_done(
    redis: aioredis.Redis,
    keys: RedisKeys,
    task_id: str,
    payload: dict[str, Any],
    ttl_s: int,
    local: LocalFeed | None = None,
) -> None:
    """Write the terminal record into the history stream and announce it live, and to this
    process's subscribers when the task runs here (after the write: see LocalFeed)."""
    record = encode_done(payload)
    batch = redis_batch(redis)
    if batch is not None:  # one script, in the tick's pipeline (engine/redis_batch.py)
        history = keys.history(task_id)
        await batch.eval(_DONE, _DONE_SHA, [history], [record, ttl_s, keys.live(task_id)])
        if local is not None:
            local.hand(task_id, DONE, payload)
        return
    pipe = redis.pipeline(transaction=True)
    pipe.xadd(keys.history(task_id), {"r": record})
    pipe.expire(keys.history(task_id), ttl_s)
    publish_live(pipe, keys.live(task_id), record)  # one slot with the history on a cluster
    await pipe.execute()
    if local is not None:
        local.hand(task_id, DONE, payload)
