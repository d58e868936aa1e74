"""ai_usage_logs: one row per finished task, summed by day and model for the user."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def usage_by_day(conn: Conn, user_id: UUID, first: date, last: date) -> list[asyncpg.Record]:
    """The user's totals per day, provider and model, from `first` to `last` inclusive."""
    return await conn.fetch(
        "SELECT day, provider, model, count(*) AS tasks,"
        " sum(input_tokens)::bigint AS input_tokens,"
        " sum(output_tokens)::bigint AS output_tokens, sum(cost_usd) AS cost_usd,"
        " (count(*) - count(cost_usd))::int AS unpriced_tasks"
        " FROM ai_usage_logs WHERE user_id = $1 AND day BETWEEN $2 AND $3"
        " GROUP BY day, provider, model ORDER BY day, provider, model",
        user_id,
        first,
        last,
    )
