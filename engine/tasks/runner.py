"""Run one task: stream from the provider, coalesce into chunks, finalize exactly once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from db import tasks as task_rows
from db.pool import DatabaseBusy
from engine.accounts.quotas import Quotas, Reservation
from engine.errors import InternalError, PromptrelayError, ProviderUnavailable, StreamTimeout
from engine.metrics import Metrics
from engine.prompts.validation import validate_output
from engine.providers.base import Provider, ProviderRequest, Usage, estimate_tokens
from engine.providers.pricing import task_cost
from engine.stream.keys import Keys, encode_done
from engine.stream.publisher import ChunkPublisher
from engine.tasks.retries import Candidate, KeySource, RetryPolicy, open_task_stream
from engine.tasks.tasklog import bind_task, record_end

log = logging.getLogger(__name__)

_RESCHEDULE_EVERY_S = 0.5  # move the idle deadline at most this often (timers are not free)

# Postgres unreachable, restarting or out of free connections: trying again may help.
FINALIZE_RETRYABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    DatabaseBusy,
    OSError,
    TimeoutError,
)

# Parks an outcome that could not be written (task id, outcome, task_done payload).
FinalizeDeferrer = Callable[[UUID, task_rows.TaskOutcome, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class TaskPlan:
    """Everything a runner needs, decided before the task row was written."""

    task_id: UUID
    run_id: UUID | None
    user_id: UUID
    provider: Provider
    provider_name: str
    request: ProviderRequest
    new_messages: list[dict[str, str]]  # appended to the run with the assistant's answer
    reservation: Reservation | None = None  # the quota unit taken at execute
    validations: list[dict[str, Any]] = field(default_factory=list)  # run on the final text
    fallbacks: tuple[Candidate, ...] = ()  # tried in order when the model is unavailable
    keys: KeySource | None = None  # a bring-your-own-key user's keys; None: the server's
    priority: str = "normal"  # where it waits (the job stream), it starts in this order


@dataclass
class RunnerDeps:
    pool: asyncpg.Pool
    redis: aioredis.Redis
    keys: Keys
    publisher: ChunkPublisher
    first_token_timeout_s: float
    idle_timeout_s: float
    history_ttl_s: int
    metrics: Metrics = field(default_factory=Metrics)
    quotas: Quotas | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    defer_finalize: FinalizeDeferrer | None = None  # set by engine/cluster/node.py


@dataclass
class _Progress:
    started: float = field(default_factory=time.monotonic)
    parts: list[str] = field(default_factory=list)
    ttft_ms: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, kind: str, message: str = "", level: str = "info", **metadata: Any) -> None:
        self.events.append(
            {
                "at": datetime.now(UTC).isoformat(),
                "level": level,
                "kind": kind,
                "message": message,
                "metadata": metadata,
            }
        )


class CancelReason:
    """Why a runner was cancelled: a client's cancel, or the node shutting down."""

    CLIENT = "cancelled"
    SHUTDOWN = "shutdown"


async def run_task(deps: RunnerDeps, plan: TaskPlan, reason: dict[str, str]) -> dict[str, Any]:
    """Stream the task to its end and finalize it; returns the `task_done` payload.

    `reason["why"]` is set by whoever cancels the task before cancelling it.
    """
    task_id = str(plan.task_id)
    bind_task(task_id, plan.run_id)
    progress = _Progress()
    deps.publisher.open(task_id)
    status, error, finish, usage = "completed", None, "stop", None
    try:
        plan, stream = await open_task_stream(deps, plan, progress.event)  # retries, fallbacks
        async with stream:
            try:
                await _consume(deps, plan, stream, progress)
            finally:
                usage = stream.usage
            if stream.finish_reason is None:
                raise ProviderUnavailable("the provider stream ended before it finished")
            finish = stream.finish_reason
    except asyncio.CancelledError:
        if reason.get("why") != CancelReason.CLIENT:
            status, finish = "failed", "error"
            error = _error_dict(InternalError("the server stopped while the task ran"), True)
        else:
            status, finish = "cancelled", "cancelled"
        await asyncio.shield(_finish(deps, plan, progress, status, finish, usage, error))
        raise
    except PromptrelayError as exc:
        status, finish, error = "failed", "error", _error_dict(exc, exc.retryable)
        progress.event("error", exc.message, level="error", code=exc.code)
    except Exception:
        log.exception("task %s failed", task_id)
        status, finish = "failed", "error"
        error = _error_dict(InternalError("internal error"), False)
        progress.event("error", "internal error", level="error", code="internal")
    return await asyncio.shield(_finish(deps, plan, progress, status, finish, usage, error))


async def _consume(deps: RunnerDeps, plan: TaskPlan, stream: Any, progress: _Progress) -> None:
    task_id = str(plan.task_id)
    loop = asyncio.get_running_loop()
    append = deps.publisher.append
    try:
        async with asyncio.timeout(deps.first_token_timeout_s) as deadline:
            moved = 0.0
            async for delta in stream:
                if progress.ttft_ms is None:
                    progress.ttft_ms = int((time.monotonic() - progress.started) * 1000)
                    progress.event("first_token", ttft_ms=progress.ttft_ms)
                progress.parts.append(delta)
                append(task_id, delta)
                now = loop.time()
                if now - moved > _RESCHEDULE_EVERY_S:
                    deadline.reschedule(now + deps.idle_timeout_s)
                    moved = now
    except TimeoutError:
        which = "first token" if progress.ttft_ms is None else "next token"
        raise StreamTimeout(f"no {which} from the provider in time") from None


def _error_dict(exc: PromptrelayError, retryable: bool) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "retryable": retryable}


async def _finish(
    deps: RunnerDeps,
    plan: TaskPlan,
    progress: _Progress,
    status: str,
    finish: str,
    usage: Usage | None,
    error: dict[str, Any] | None,
) -> dict[str, Any]:
    """Flush, write the outcome in one statement, then put the terminal record on Redis."""
    task_id = str(plan.task_id)
    last_seq = await deps.publisher.drain(task_id)
    text = "".join(progress.parts)
    usage_source = "provider"
    if usage is None or (usage.output_tokens == 0 and text):
        usage_source = "estimated"
        usage = Usage(_estimate_input(plan.request), estimate_tokens(text))
    cost = await task_cost(deps.pool, plan.provider, plan.request.model, usage)
    latency_ms = int((time.monotonic() - progress.started) * 1000)
    validation = await validate_output(plan.validations, text, status)
    progress.event("finalized", status=status, last_seq=last_seq, validation=validation.status)
    run_messages = [*plan.new_messages, {"role": "assistant", "content": text}]
    outcome = task_rows.TaskOutcome(
        status=status,
        text=text,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        usage_source=usage_source,
        cost_usd=cost,
        last_seq=last_seq,
        ttft_ms=progress.ttft_ms,
        latency_ms=latency_ms,
        finish_reason=finish,
        error=error,
        validation_status=validation.status,
        run_messages=run_messages,
        events=progress.events,
        validation_errors=validation.errors,
    )
    payload = done_payload(
        task_id=task_id,
        run_id=plan.run_id,
        status=status,
        text=text,
        last_seq=last_seq,
        finish_reason=finish,
        provider=plan.provider_name,
        model=plan.request.model,
        usage=usage,
        cost=cost,
        ttft_ms=progress.ttft_ms,
        latency_ms=latency_ms,
        validation=validation.to_dict(),
        error=error,
    )
    try:
        with deps.metrics.pg_finalize.time():
            landed = await _finalize_with_retries(deps.pool, plan.task_id, outcome)
    except FINALIZE_RETRYABLE:
        if deps.defer_finalize is None:
            raise
        # Postgres stays away: park the outcome in Redis; it lands (once) when it is back,
        # and whoever lands it publishes the terminal record.
        await deps.defer_finalize(plan.task_id, outcome, payload)
        landed = False
    record_end(
        deps.metrics,
        provider=plan.provider_name,
        model=plan.request.model,
        status=status,
        usage=usage,
        ttft_ms=progress.ttft_ms,
        latency_ms=latency_ms,
        last_seq=last_seq,
        error=error,
    )
    if deps.quotas is not None:  # a task that failed before its first token costs nothing
        await deps.quotas.settle(
            plan.reservation, give_back=status == "failed" and progress.ttft_ms is None
        )
    if landed:  # else a sweeper ended the task first and wrote its terminal record
        await publish_done(deps.redis, deps.keys, task_id, payload, deps.history_ttl_s)
    return payload


async def _finalize_with_retries(
    pool: asyncpg.Pool, task_id: UUID, outcome: task_rows.TaskOutcome, attempts: int = 6
) -> bool:
    """Postgres may blink; the finalize is idempotent, so trying again is safe.

    False when the task had already ended before the first attempt (someone else ended it).
    """
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            # After a dropped connection the earlier attempt may have committed.
            return await task_rows.finalize_task(pool, task_id, outcome) or attempt > 1
        except FINALIZE_RETRYABLE as exc:
            if attempt == attempts:
                raise
            log.warning("finalize of task %s failed (%s); retrying", task_id, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    return False  # not reached: the last attempt returns or raises


def _estimate_input(request: ProviderRequest) -> int:
    return sum(estimate_tokens(m.get("content", "")) for m in request.messages)


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
) -> dict[str, Any]:
    """The `task_done` event of PROTOCOL.md."""
    return {
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
        },
        "cost_usd": None if cost is None else format_money(cost),
        "ttft_ms": ttft_ms,
        "latency_ms": latency_ms,
        "validation": validation,
        "error": error,
    }


def format_money(value: Decimal) -> str:
    """A decimal string with no exponent and no float rounding."""
    return format(value.normalize() if value else Decimal(0), "f")


async def publish_done(
    redis: aioredis.Redis, keys: Keys, task_id: str, payload: dict[str, Any], ttl_s: int
) -> None:
    """Write the terminal record into the history stream and announce it live."""
    record = encode_done(payload)
    pipe = redis.pipeline(transaction=True)
    pipe.xadd(keys.history(task_id), {"r": record})
    pipe.expire(keys.history(task_id), ttl_s)
    pipe.publish(keys.live(task_id), record)
    await pipe.execute()
