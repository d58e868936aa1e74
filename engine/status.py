"""A task's status: the one set of names used by the code, the `ai_tasks.status` check
(sql/001_schema.sql), the protocol schema and the generated TypeScript types."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """Where a task is: waiting for a worker, streaming, or ended one of three ways."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Not ended yet: a worker may still write to it.
LIVE = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING})
# Ended: the outcome is final.
ENDED = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
