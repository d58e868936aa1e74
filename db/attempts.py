"""The provider and model that answered a task, when a fallback did."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def set_answering_model(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: UUID, provider: str, model: str
) -> None:
    """Record on the running task that `provider/model` answered it (before finalize reads it)."""
    await conn.execute(
        "UPDATE ai_tasks SET provider = $2, model = $3"
        " WHERE task_id = $1 AND status IN ('queued', 'running')",
        task_id,
        provider,
        model,
    )
