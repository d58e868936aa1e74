"""Tool results: added one by one to the task that asked for the calls, each at most once."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

# Under the row lock of the UPDATE, a second answer to the same call finds it answered (the
# WHERE is evaluated again on the row the first one wrote), so each call is answered once
# and exactly one answer sees the step complete.
_ANSWER = """
UPDATE ai_tasks
SET tool_results = COALESCE(tool_results, '{}'::jsonb) || jsonb_build_object($3::text, $4::text)
WHERE task_id = $1 AND user_id = $2 AND NOT (COALESCE(tool_results, '{}'::jsonb) ? $3::text)
RETURNING tool_results
"""


async def add_tool_result(
    conn: asyncpg.Connection | asyncpg.Pool,
    task_id: UUID,
    user_id: UUID,
    call_id: str,
    output: str,
) -> dict[str, str] | None:
    """Record the answer to one call; returns every answer so far, or None when the call
    was answered already (or the task is not the user's)."""
    results: dict[str, str] | None = await conn.fetchval(_ANSWER, task_id, user_id, call_id, output)
    return results


async def tool_state(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: UUID
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The calls a task asked for and the answers so far (both empty for an unknown task)."""
    row = await conn.fetchrow(
        "SELECT tool_calls, tool_results FROM ai_tasks WHERE task_id = $1", task_id
    )
    if row is None:
        return [], {}
    return row["tool_calls"] or [], row["tool_results"] or {}
