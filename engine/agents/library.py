"""Agent templates and agents: create, read, list, update, delete; an agent's executions.

A personal template or agent is its author's; an org's is read and run by the org's members
and written by its admins. Anyone else gets `not_found`, as for a missing id.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from db import agents as agent_rows
from engine.agents.models import AgentCreate, AgentTemplateCreate, AgentUpdate
from engine.errors import Forbidden, NotFound
from engine.prompts.owners import new_prompt_owner
from engine.protocol import paging


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _span_ms(started: datetime, ended: datetime) -> int:
    """Whole milliseconds, rounded half up as the counting trigger's `::bigint` rounds them
    (sql/018_agent_turns.sql), so the average and the executions agree."""
    micros = (ended - started) // timedelta(microseconds=1)
    return max(0, (micros + 500) // 1000)


def template_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "org_id": str(row["org_id"]) if row["org_id"] else None,
        "name": row["name"],
        "description": row["description"],
        "system_prompt": row["system_prompt"],
        "variables": row["variables"],
        "model": row["model"],
        "settings": row["settings"],
        "tools": row["tools"],
        "role": row["role"],
        "created_at": row["created_at"].isoformat(),
    }


def agent_view(row: asyncpg.Record) -> dict[str, Any]:
    count = int(row["execution_count"])
    return {
        "id": str(row["id"]),
        "template_id": str(row["template_id"]),
        "org_id": str(row["org_id"]) if row["org_id"] else None,
        "name": row["name"],
        "variables": row["variables"],
        "model": row["model"],
        "role": row["role"],
        "execution_count": count,
        "last_executed_at": _iso(row["last_executed_at"]),
        "average_execution_ms": round(row["total_execution_ms"] / count) if count else None,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def execution_view(row: asyncpg.Record) -> dict[str, Any]:
    started, completed = row["started_at"], row["completed_at"]
    elapsed = _span_ms(started, completed) if started and completed else None
    return {
        "task_id": str(row["task_id"]),
        "status": row["status"],
        "model": row["model"],
        "started_at": _iso(started),
        "completed_at": _iso(completed),
        "tokens_used": row["total_tokens"],
        "execution_ms": elapsed,
        "model_calls": row["model_calls"],
        "tools_called": row["names"],
        "result": row["response_text"],
        "error": row["error"],
    }


async def create_template(
    pool: asyncpg.Pool, user_id: UUID, body: AgentTemplateCreate
) -> dict[str, Any]:
    org_id, _ = await new_prompt_owner(pool, user_id, body.org_id, None)
    template_id = uuid.uuid4()
    content = agent_rows.NewTemplate(
        name=body.name,
        description=body.description,
        system_prompt=body.system_prompt,
        variables=[v.model_dump(exclude_none=True) for v in body.variables],
        model=body.model,
        settings=(
            body.settings.model_dump(exclude_none=True, by_alias=True) if body.settings else {}
        ),
        tools=[t.model_dump() for t in body.tools or []],
    )
    await agent_rows.create_template(pool, template_id, user_id, org_id, content)
    return await get_template(pool, user_id, template_id)


async def get_template(pool: asyncpg.Pool, user_id: UUID, template_id: UUID) -> dict[str, Any]:
    row = await agent_rows.get_template(pool, template_id, user_id)
    if row is None:
        raise NotFound("agent template not found")
    return template_view(row)


async def list_templates(
    pool: asyncpg.Pool, user_id: UUID, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    rows = await agent_rows.list_templates(
        pool, user_id, limit=limit + 1, after=paging.after_time_and_id(cursor)
    )
    return paging.page(rows, limit, template_view, paging.by_time_and_id("created_at", "id"))


async def create_agent(pool: asyncpg.Pool, user_id: UUID, body: AgentCreate) -> dict[str, Any]:
    """An agent of a template the caller may read; an org's agent needs an org admin."""
    org_id, _ = await new_prompt_owner(pool, user_id, body.org_id, None)
    await get_template(pool, user_id, body.template_id)
    agent_id = uuid.uuid4()
    header = {"name": body.name, "variables": dict(body.variables), "model": body.model}
    await agent_rows.create_agent(pool, agent_id, body.template_id, user_id, org_id, header)
    return await get_agent(pool, user_id, agent_id)


async def get_agent(pool: asyncpg.Pool, user_id: UUID, agent_id: UUID) -> dict[str, Any]:
    row = await agent_rows.get_agent(pool, agent_id, user_id)
    if row is None:
        raise NotFound("agent not found")
    return agent_view(row)


async def list_agents(
    pool: asyncpg.Pool, user_id: UUID, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    rows = await agent_rows.list_agents(
        pool, user_id, limit=limit + 1, after=paging.after_time_and_id(cursor)
    )
    return paging.page(rows, limit, agent_view, paging.by_time_and_id("created_at", "id"))


async def _require_writer(pool: asyncpg.Pool, user_id: UUID, agent_id: UUID) -> dict[str, Any]:
    current = await get_agent(pool, user_id, agent_id)
    if current["role"] != "admin":
        raise Forbidden("only an admin of the org that owns an agent may change it")
    return current


async def update_agent(
    pool: asyncpg.Pool, user_id: UUID, agent_id: UUID, body: AgentUpdate
) -> dict[str, Any]:
    current = await _require_writer(pool, user_id, agent_id)
    sent = body.model_fields_set
    header = {
        "name": body.name if body.name is not None else current["name"],
        "variables": dict(body.variables) if body.variables is not None else current["variables"],
        "model": body.model if "model" in sent else current["model"],
    }
    if not await agent_rows.update_agent(pool, agent_id, user_id, header):
        raise NotFound("agent not found")
    return await get_agent(pool, user_id, agent_id)


async def delete_agent(pool: asyncpg.Pool, user_id: UUID, agent_id: UUID) -> None:
    await _require_writer(pool, user_id, agent_id)
    if not await agent_rows.delete_agent(pool, agent_id, user_id):
        raise NotFound("agent not found")


async def executions(
    pool: asyncpg.Pool, user_id: UUID, agent_id: UUID, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`{items, next_cursor}` of the caller's executions of the agent, newest first."""
    await get_agent(pool, user_id, agent_id)
    rows = await agent_rows.list_executions(
        pool, agent_id, user_id, limit=limit + 1, after=paging.after_time_and_id(cursor)
    )
    return paging.page(rows, limit, execution_view, paging.by_time_and_id("created_at", "task_id"))
