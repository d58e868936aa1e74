"""ai_runs rows (conversations)."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def get_run(
    conn: asyncpg.Connection | asyncpg.Pool, run_id: UUID, user_id: UUID
) -> asyncpg.Record | None:
    """The caller's run, or None (also when it is someone else's)."""
    return await conn.fetchrow(
        "SELECT id, name, prompt_id, status, messages, variable_values, broker_values,"
        " input_tokens, output_tokens, total_tokens, total_cost_usd, task_count,"
        " created_at, updated_at FROM ai_runs WHERE id = $1 AND user_id = $2",
        run_id,
        user_id,
    )
