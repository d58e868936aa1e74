"""What a task leaves behind besides its row: log context, one log line and metrics at its end.

The task and run ids live in context variables, set at the start of the task's runner, so
every log line written while the task runs carries them (asyncio copies the context into
each task it starts, so they never leak from one task into another).
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any
from uuid import UUID

from engine.errors import fault_of
from engine.metrics import Metrics
from engine.status import TaskStatus
from engine.usage import Usage

log = logging.getLogger("promptrelay.task")

TASK_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)
RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)


def bind_task(task_id: UUID | str, run_id: UUID | str | None) -> None:
    """Tag every log line of the current asyncio task with these ids."""
    TASK_ID.set(str(task_id))
    RUN_ID.set(str(run_id) if run_id else None)


def log_context() -> dict[str, str]:
    """The ids bound in the current context, for log formatters."""
    ids = {"task_id": TASK_ID.get(), "run_id": RUN_ID.get()}
    return {k: v for k, v in ids.items() if v is not None}


def record_end(
    metrics: Metrics,
    *,
    provider: str,
    model: str,
    status: str,
    usage: Usage,
    ttft_ms: int | None,
    latency_ms: int,
    last_seq: int,
    error: dict[str, Any] | None,
) -> None:
    """Count the ended task and write its one summary log line."""
    metrics.tasks.labels(status, provider).inc()
    metrics.tokens.labels(provider).inc(usage.output_tokens)
    metrics.task_latency.labels(provider).observe(latency_ms / 1000)
    if ttft_ms is not None:
        metrics.ttft.labels(provider).observe(ttft_ms / 1000)
    code = error.get("code") if error else None
    if status == TaskStatus.FAILED and code:
        metrics.task_failures.labels(provider, str(code), fault_of(str(code))).inc()
    log.info(
        "task ended",
        extra={
            "event": "task_ended",
            "status": status,
            "provider": provider,
            "model": model,
            "output_tokens": usage.output_tokens,
            "last_seq": last_seq,
            "ttft_ms": ttft_ms,
            "latency_ms": latency_ms,
            "error_code": code,
        },
    )
