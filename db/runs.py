"""ai_runs rows (conversations)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg


async def get_run(
    conn: asyncpg.Connection | asyncpg.Pool, run_id: UUID, user_id: UUID
) -> asyncpg.Record | None:
    """The caller's run, or None (also when it is someone else's)."""
    return await conn.fetchrow(
        "SELECT id, name, prompt_id, status, messages, variable_values, broker_values,"
        " input_tokens, output_tokens, total_tokens, reasoning_tokens, total_cost_usd,"
        " task_count, unpriced_tasks, created_at, updated_at"
        " FROM ai_runs WHERE id = $1 AND user_id = $2",
        run_id,
        user_id,
    )


# A run as the list shows it; `preview` is the first 120 characters of its newest message's
# text (sql/016_message_text.sql: never an image's data).
RUN_SUMMARY = (
    "id, name, status, task_count, unpriced_tasks, input_tokens, output_tokens, total_tokens,"
    " total_cost_usd,"
    " left(message_text(messages -> -1), 120) AS preview, messages -> -1 ->> 'role' AS"
    " preview_role, created_at, updated_at"
)


async def list_runs(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: UUID,
    *,
    statuses: tuple[str, ...],
    text: str | None,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[asyncpg.Record]:
    """The caller's runs, most recently active first, keyset-paged by (updated_at, id).

    `text` matches the title or any message's content, case-insensitively.
    """
    return await conn.fetch(
        f"SELECT {RUN_SUMMARY} FROM ai_runs r"
        " WHERE r.user_id = $1 AND r.status = ANY($2::text[])"
        "   AND ($3::text IS NULL OR strpos(lower(r.name), lower($3)) > 0 OR EXISTS ("
        "     SELECT 1 FROM jsonb_array_elements(r.messages) m"
        "     WHERE strpos(lower(message_text(m)), lower($3)) > 0))"
        "   AND ($4::timestamptz IS NULL OR (r.updated_at, r.id) < ($4, $5::uuid))"
        " ORDER BY r.updated_at DESC, r.id DESC LIMIT $6",
        user_id,
        list(statuses),
        text,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def update_run(
    conn: asyncpg.Connection | asyncpg.Pool,
    run_id: UUID,
    user_id: UUID,
    *,
    title: str | None,
    status: str | None,
) -> asyncpg.Record | None:
    """Set the title and/or status of the caller's run; None when it is not theirs.

    Neither counts as activity: `updated_at` (the list's order) stays as it was.
    """
    return await conn.fetchrow(
        "UPDATE ai_runs SET name = COALESCE($3, name), status = COALESCE($4, status)"
        " WHERE id = $1 AND user_id = $2"
        f" RETURNING {RUN_SUMMARY}",
        run_id,
        user_id,
        title,
        status,
    )


async def run_tasks(
    conn: asyncpg.Connection | asyncpg.Pool, run_id: UUID, user_id: UUID
) -> list[asyncpg.Record]:
    """(task_id, status, request_id) of the caller's tasks of this run."""
    return await conn.fetch(
        "SELECT task_id, status, request_id FROM ai_tasks WHERE run_id = $1 AND user_id = $2",
        run_id,
        user_id,
    )


async def delete_run(pool: asyncpg.Pool, run_id: UUID, user_id: UUID) -> bool:
    """Delete the caller's run, its tasks and their events in one transaction; usage-log
    rows stay (their task_id becomes NULL). False when the run is not theirs."""
    async with pool.acquire() as conn, conn.transaction():
        owned = await conn.fetchval(
            "SELECT id FROM ai_runs WHERE id = $1 AND user_id = $2 FOR UPDATE", run_id, user_id
        )
        if owned is None:
            return False
        await conn.execute("DELETE FROM ai_tasks WHERE run_id = $1", run_id)
        await conn.execute("DELETE FROM ai_runs WHERE id = $1", run_id)
    return True
