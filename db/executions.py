"""Reads over many ai_tasks rows: the executions list and a prompt's statistics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

SUMMARY_COLUMNS = (
    "task_id, run_id, prompt_id, prompt_version, builtin, provider, model, status, priority,"
    " input_tokens, output_tokens, total_tokens, reasoning_tokens, cost_usd, ttft_ms,"
    " latency_ms, created_at, completed_at"
)


@dataclass(frozen=True)
class TaskFilter:
    """Filters of `GET /v1/tasks`; None leaves a filter out. `start` is inclusive, `end`
    exclusive."""

    run_id: UUID | None = None
    prompt_id: UUID | None = None
    status: str | None = None
    start: datetime | None = None
    end: datetime | None = None


async def list_tasks(
    conn: Conn,
    user_id: UUID,
    where: TaskFilter,
    *,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[asyncpg.Record]:
    """The caller's tasks, newest first, keyset-paged by (created_at, task_id)."""
    return await conn.fetch(
        f"SELECT {SUMMARY_COLUMNS} FROM ai_tasks"
        " WHERE user_id = $1"
        "   AND ($2::uuid IS NULL OR run_id = $2)"
        "   AND ($3::uuid IS NULL OR prompt_id = $3)"
        "   AND ($4::text IS NULL OR status = $4)"
        "   AND ($5::timestamptz IS NULL OR created_at >= $5)"
        "   AND ($6::timestamptz IS NULL OR created_at < $6)"
        "   AND ($7::timestamptz IS NULL OR (created_at, task_id) < ($7, $8::uuid))"
        " ORDER BY created_at DESC, task_id DESC LIMIT $9",
        user_id,
        where.run_id,
        where.prompt_id,
        where.status,
        where.start,
        where.end,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


# One row per version and one total row (version NULL, `total` true), in one scan.
_STATS = """
SELECT prompt_version AS version, GROUPING(prompt_version) = 1 AS total,
       count(*) AS executions,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE validation_status = 'passed') AS validation_passed,
       count(*) FILTER (WHERE validation_status = 'failed') AS validation_failed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms) AS ttft_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY ttft_ms) AS ttft_p95,
       COALESCE(sum(input_tokens), 0)::bigint AS input_tokens,
       COALESCE(sum(output_tokens), 0)::bigint AS output_tokens,
       COALESCE(sum(total_tokens), 0)::bigint AS total_tokens,
       count(cost_usd) AS priced,
       sum(cost_usd) AS total_cost,
       avg(cost_usd) AS average_cost
FROM ai_tasks
WHERE prompt_id = $1 AND user_id = $2
  AND ($3::timestamptz IS NULL OR created_at >= $3)
  AND ($4::timestamptz IS NULL OR created_at < $4)
GROUP BY GROUPING SETS ((prompt_version), ())
ORDER BY GROUPING(prompt_version), prompt_version
"""


async def prompt_stats(
    conn: Conn, prompt_id: UUID, user_id: UUID, start: datetime | None, end: datetime | None
) -> list[asyncpg.Record]:
    """Per-version rows, then the total row (always present, with zero counts when no task
    matched). Percentiles ignore tasks without the figure (still running, no first token)."""
    return await conn.fetch(_STATS, prompt_id, user_id, start, end)
