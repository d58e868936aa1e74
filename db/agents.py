"""Agent templates, agents and their executions (sql/014_agents.sql).

Access follows the prompt rule (sql/012 `prompt_role`, without a project): a personal row is
its author's, an org's row is read by its members and written by its admins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

_TEMPLATE_ROLE = "prompt_role(t.user_id, t.org_id, NULL, {})"
_AGENT_ROLE = "prompt_role(a.user_id, a.org_id, NULL, {})"
TEMPLATE_COLUMNS = (
    "t.id, t.org_id, t.name, t.description, t.system_prompt, t.variables, t.model, t.settings,"
    " t.tools, t.created_at"
)
AGENT_COLUMNS = (
    "a.id, a.template_id, a.org_id, a.name, a.variables, a.model, a.execution_count,"
    " a.total_execution_ms, a.last_executed_at, a.created_at, a.updated_at"
)


@dataclass(frozen=True)
class NewTemplate:
    name: str
    description: str
    system_prompt: str
    variables: list[dict[str, Any]]
    model: str | None
    settings: dict[str, Any]
    tools: list[dict[str, Any]]


async def create_template(
    conn: asyncpg.Connection | asyncpg.Pool,
    template_id: UUID,
    user_id: UUID,
    org_id: UUID | None,
    body: NewTemplate,
) -> None:
    await conn.execute(
        "INSERT INTO agent_templates (id, user_id, org_id, name, description, system_prompt,"
        " variables, model, settings, tools) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        template_id,
        user_id,
        org_id,
        body.name,
        body.description,
        body.system_prompt,
        body.variables,
        body.model,
        body.settings,
        body.tools,
    )


async def get_template(
    conn: asyncpg.Connection | asyncpg.Pool, template_id: UUID, user_id: UUID
) -> asyncpg.Record | None:
    """A template the caller may read, with their `role` on it."""
    return await conn.fetchrow(
        f"SELECT {TEMPLATE_COLUMNS}, {_TEMPLATE_ROLE.format('$2')} AS role"
        f" FROM agent_templates t WHERE t.id = $1 AND {_TEMPLATE_ROLE.format('$2')} IS NOT NULL",
        template_id,
        user_id,
    )


async def list_templates(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: UUID,
    *,
    limit: int,
    after: tuple[Any, UUID] | None,
) -> list[asyncpg.Record]:
    """Templates the caller may read, newest first."""
    return await conn.fetch(
        f"SELECT {TEMPLATE_COLUMNS}, {_TEMPLATE_ROLE.format('$1')} AS role FROM agent_templates t"
        f" WHERE {_TEMPLATE_ROLE.format('$1')} IS NOT NULL"
        "   AND ($2::timestamptz IS NULL OR (t.created_at, t.id) < ($2, $3::uuid))"
        " ORDER BY t.created_at DESC, t.id DESC LIMIT $4",
        user_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def create_agent(
    conn: asyncpg.Connection | asyncpg.Pool,
    agent_id: UUID,
    template_id: UUID,
    user_id: UUID,
    org_id: UUID | None,
    header: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO agents (id, template_id, user_id, org_id, name, variables, model)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        agent_id,
        template_id,
        user_id,
        org_id,
        header["name"],
        header["variables"],
        header["model"],
    )


async def get_agent(
    conn: asyncpg.Connection | asyncpg.Pool, agent_id: UUID, user_id: UUID
) -> asyncpg.Record | None:
    """An agent the caller may read, with their `role` and its template's content."""
    return await conn.fetchrow(
        f"SELECT {AGENT_COLUMNS}, {_AGENT_ROLE.format('$2')} AS role,"
        " t.system_prompt, t.variables AS definitions, t.model AS default_model, t.settings,"
        " t.tools"
        " FROM agents a JOIN agent_templates t ON t.id = a.template_id"
        f" WHERE a.id = $1 AND {_AGENT_ROLE.format('$2')} IS NOT NULL",
        agent_id,
        user_id,
    )


async def list_agents(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: UUID,
    *,
    limit: int,
    after: tuple[Any, UUID] | None,
) -> list[asyncpg.Record]:
    """Agents the caller may read (theirs and their orgs'), newest first."""
    return await conn.fetch(
        f"SELECT {AGENT_COLUMNS}, {_AGENT_ROLE.format('$1')} AS role FROM agents a"
        f" WHERE {_AGENT_ROLE.format('$1')} IS NOT NULL"
        "   AND ($2::timestamptz IS NULL OR (a.created_at, a.id) < ($2, $3::uuid))"
        " ORDER BY a.created_at DESC, a.id DESC LIMIT $4",
        user_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def update_agent(
    conn: asyncpg.Connection | asyncpg.Pool, agent_id: UUID, user_id: UUID, header: dict[str, Any]
) -> bool:
    """Change name, values and model override; False unless the caller may write it."""
    row = await conn.fetchval(
        "UPDATE agents a SET name = $3, variables = $4, model = $5, updated_at = now()"
        f" WHERE a.id = $1 AND {_AGENT_ROLE.format('$2')} = 'admin' RETURNING a.id",
        agent_id,
        user_id,
        header["name"],
        header["variables"],
        header["model"],
    )
    return row is not None


async def delete_agent(
    conn: asyncpg.Connection | asyncpg.Pool, agent_id: UUID, user_id: UUID
) -> bool:
    row = await conn.fetchval(
        f"DELETE FROM agents a WHERE a.id = $1 AND {_AGENT_ROLE.format('$2')} = 'admin'"
        " RETURNING a.id",
        agent_id,
        user_id,
    )
    return row is not None


# An execution is a turn: its first task (the execute's) and the tool continuations after it
# (sql/018_agent_turns.sql). Status, end, result and error are the last step's; tokens, model
# calls and tools called add up over every step.
_EXECUTIONS = """
WITH f AS (
    SELECT t.task_id, t.model, t.started_at, t.created_at FROM ai_tasks t
    WHERE t.agent_id = $1 AND t.user_id = $2 AND t.first_task_id IS NULL
      AND ($3::timestamptz IS NULL OR (t.created_at, t.task_id) < ($3, $4::uuid))
    ORDER BY t.created_at DESC, t.task_id DESC LIMIT $5
)
SELECT f.task_id, f.model, f.started_at, f.created_at, last.status, last.completed_at,
       last.response_text, last.error, steps.total_tokens, calls.model_calls, tools.names
FROM f
CROSS JOIN LATERAL (
    SELECT s.status, s.completed_at, s.response_text, s.error FROM ai_tasks s
    WHERE s.task_id = f.task_id OR s.first_task_id = f.task_id
    ORDER BY s.step DESC, s.created_at DESC LIMIT 1
) last
CROSS JOIN LATERAL (
    SELECT sum(s.total_tokens)::bigint AS total_tokens FROM ai_tasks s
    WHERE s.task_id = f.task_id OR s.first_task_id = f.task_id
) steps
CROSS JOIN LATERAL (
    SELECT count(*) AS model_calls FROM ai_tasks s
    JOIN task_events e ON e.task_id = s.task_id AND e.kind = 'provider_call'
    WHERE s.task_id = f.task_id OR s.first_task_id = f.task_id
) calls
CROSS JOIN LATERAL (
    SELECT COALESCE(jsonb_agg(c.call ->> 'name' ORDER BY s.step, c.ord), '[]'::jsonb) AS names
    FROM ai_tasks s
    CROSS JOIN LATERAL jsonb_array_elements(COALESCE(s.tool_calls, '[]'::jsonb))
        WITH ORDINALITY AS c(call, ord)
    WHERE s.task_id = f.task_id OR s.first_task_id = f.task_id
) tools
ORDER BY f.created_at DESC, f.task_id DESC
"""


async def list_executions(
    conn: asyncpg.Connection | asyncpg.Pool,
    agent_id: UUID,
    user_id: UUID,
    *,
    limit: int,
    after: tuple[Any, UUID] | None,
) -> list[asyncpg.Record]:
    """The caller's executions of the agent, newest first: one row per turn, named by its
    first task, with the figures of all its steps."""
    return await conn.fetch(
        _EXECUTIONS,
        agent_id,
        user_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
