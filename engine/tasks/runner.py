"""Run one task: stream from the provider, coalesce into chunks, finalize exactly once."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from db.pool import DATABASE_DOWN
from engine.errors import InternalError, PromptrelayError, ProviderUnavailable, StreamTimeout
from engine.providers.base import ProviderRequest, estimate_tokens
from engine.providers.parts import content_chars
from engine.providers.pricing import task_cost
from engine.providers.reasoning import ReasoningDelta
from engine.providers.toolcalls import ToolCallAssembler, ToolCallDelta
from engine.status import TaskStatus
from engine.stream.coalescer import CallRef
from engine.tasks.finalize import (
    TaskEnd,
    error_payload,
    publish_done,
    task_event,
    write_outcome,
)
from engine.tasks.plan import RunnerDeps, TaskPlan
from engine.tasks.retries import open_task_stream
from engine.tasks.tasklog import bind_task, record_end
from engine.tasks.toolsteps import StepEnd, await_results, end_step, hand_over
from engine.usage import Usage

log = logging.getLogger(__name__)

_RESCHEDULE_EVERY_S = 0.5  # move the idle deadline at most this often (timers are not free)


@dataclass
class _Progress:
    started: float = field(default_factory=time.monotonic)
    parts: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)  # the reasoning, apart from the text
    chars: int = 0
    ttft_ms: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: ToolCallAssembler = field(default_factory=ToolCallAssembler)
    refusal: str | None = None  # the provider declined to answer (finish content_filter)
    thinking: list[dict[str, Any]] | None = None  # to send back with its tool calls

    def event(self, kind: str, message: str = "", level: str = "info", **metadata: Any) -> None:
        self.events.append(task_event(kind, message, level, **metadata))


class CancelReason(StrEnum):
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
    status, error, finish, usage = TaskStatus.COMPLETED, None, "stop", None
    try:
        if plan.parent_task_id is not None:  # a continuation: the tool results come first
            plan = await await_results(deps, plan)
            progress.started = time.monotonic()
            progress.event("tool_results", "every tool call has its result")
        plan, stream = await open_task_stream(deps, plan, progress.event)  # retries, fallbacks
        async with stream:
            try:
                await _consume(deps, plan, stream, progress)
            finally:
                usage, progress.refusal = stream.usage, stream.refusal
                progress.thinking = stream.thinking_blocks
            if progress.refusal is not None:
                progress.event("refusal", progress.refusal, level="warning")
            if stream.finish_reason is None:
                raise ProviderUnavailable("the provider stream ended before it finished")
            finish = stream.finish_reason
    except asyncio.CancelledError:
        if reason.get("why") != CancelReason.CLIENT:
            status, finish = TaskStatus.FAILED, "error"
            error = error_payload(InternalError("the server stopped while the task ran"), True)
        else:
            status, finish = TaskStatus.CANCELLED, "cancelled"
        await asyncio.shield(_finish(deps, plan, progress, status, finish, usage, error))
        raise
    except PromptrelayError as exc:
        status, finish, error = TaskStatus.FAILED, "error", error_payload(exc, exc.retryable)
        progress.event("error", exc.message, level="error", code=exc.code)
    except Exception:
        log.exception("task %s failed", task_id)
        status, finish = TaskStatus.FAILED, "error"
        error = error_payload(InternalError("internal error"), False)
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
                # Every delta is progress, a tool call's piece as much as text.
                now = loop.time()
                if now - moved > _RESCHEDULE_EVERY_S:
                    deadline.reschedule(now + deps.idle_timeout_s)
                    moved = now
                if isinstance(delta, ToolCallDelta):
                    _append_call(deps, task_id, progress, delta)
                    continue
                if isinstance(delta, ReasoningDelta):
                    _append_reasoning(deps, task_id, progress, delta.text)
                else:
                    progress.parts.append(delta)
                    append(task_id, delta)
                    progress.chars += len(delta)
                if progress.chars >= deps.max_output_chars:  # bounds its history in Redis
                    stream.finish_reason = "length"
                    break
    except TimeoutError:
        which = "first token" if progress.ttft_ms is None else "next token"
        raise StreamTimeout(f"no {which} from the provider in time") from None


def _append_call(deps: RunnerDeps, task_id: str, progress: _Progress, delta: ToolCallDelta) -> None:
    """A piece of a tool call: into the task's calls and, in order with the text, its stream."""
    piece = progress.calls.add(delta)
    assert piece.call_id is not None
    ref = CallRef(piece.index, piece.call_id, piece.name or "")
    deps.publisher.append_call(task_id, ref, piece.arguments)
    progress.chars += len(piece.arguments)
    if progress.chars >= deps.max_output_chars:
        raise ProviderUnavailable("the tool call's arguments are too long")


def _append_reasoning(deps: RunnerDeps, task_id: str, progress: _Progress, text: str) -> None:
    """A piece of reasoning: kept apart from the answer, streamed in order with it, and
    counted with the text against MAX_OUTPUT_CHARS."""
    if not text:
        return
    progress.thoughts.append(text)
    deps.publisher.append_reasoning(task_id, text)
    progress.chars += len(text)


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
    reasoning = "".join(progress.thoughts) or None
    usage_source = "provider"
    if usage is None or (usage.output_tokens == 0 and (text or reasoning)):
        usage_source = "estimated"
        thought = estimate_tokens(reasoning or "")
        usage = Usage(
            _estimate_input(plan.request),
            estimate_tokens(text) + thought,
            reasoning_tokens=thought,
        )
    cost = await task_cost(deps.pool, plan.provider, plan.request.model, usage)
    latency_ms = int((time.monotonic() - progress.started) * 1000)
    calls = progress.calls.calls() if progress.calls else None
    step = StepEnd([*plan.new_messages, {"role": "assistant", "content": text}], None)
    if calls and status == TaskStatus.COMPLETED and finish == "tool_calls":
        step = await end_step(deps, plan, text, calls, progress.thinking)
        if step.error is not None:
            status, error = TaskStatus.FAILED, error_payload(step.error)
            progress.event("error", step.error.message, level="error", code=step.error.code)
    # The output validations check the conversation's answer, not a step asking for tools.
    validations = [] if calls else plan.validations
    validation = await deps.validator.validate(plan.user_id, validations, text, status)
    progress.event("finalized", status=status, last_seq=last_seq, validation=validation.status)
    end = TaskEnd(
        task_id=task_id,
        run_id=plan.run_id,
        status=status,
        finish_reason=finish,
        text=text,
        last_seq=last_seq,
        provider=plan.provider_name,
        model=plan.request.model,
        usage=usage,
        cost=cost,
        latency_ms=latency_ms,
        ttft_ms=progress.ttft_ms,
        usage_source=usage_source,
        error=error,
        validation=validation.to_dict(),
        run_messages=step.run_messages,
        events=progress.events,
        tool_calls=calls,
        next_task_id=step.continuation.task_id if step.continuation else None,
        refusal=progress.refusal,
        reasoning=reasoning,
    )
    outcome, payload = end.outcome(), end.payload()
    try:
        with deps.metrics.pg_finalize.time():
            landed = await write_outcome(deps.pool, plan.task_id, outcome)
    except DATABASE_DOWN:
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
    # A task that failed before its first token costs nothing.
    await deps.quotas.settle(
        plan.reservation, give_back=status == TaskStatus.FAILED and progress.ttft_ms is None
    )
    if landed:  # else a sweeper ended the task first and wrote its terminal record
        await publish_done(deps.redis, deps.keys, task_id, payload, deps.history_ttl_s, deps.local)
        await hand_over(deps, step.continuation)
    return payload


def _estimate_input(request: ProviderRequest) -> int:
    return sum((content_chars(m.get("content")) + 3) // 4 for m in request.messages)
