"""What an `execute` runs: a stored prompt, a builtin, ad-hoc messages, or an agent.

An agent's system prompt is its template's, rendered through the generated-prompt cache with
the request's values over the agent's over the scoped layers (an org's agent takes its org's
variables); its model is the request's, else the agent's override, else the template's, and
its tools the request's, else the template's.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db import agents as agent_rows
from engine.errors import InvalidRequest, NotFound
from engine.prompts.resolve import ResolvedPrompt, render_stored, resolve_prompt
from engine.protocol.requests import ExecuteRequest, Scope
from engine.protocol.tools import Tool


async def resolve_execute(
    conn: asyncpg.Pool | asyncpg.Connection, user_id: UUID, req: ExecuteRequest
) -> ResolvedPrompt:
    """The rendered prompt of the request; see `resolve_prompt` for all but agents."""
    if req.agent_id is None:
        return await resolve_prompt(conn, user_id, req)
    if req.prompt_id is not None or req.builtin is not None:
        raise InvalidRequest(
            "give at most one of agent_id, prompt_id and builtin",
            details={"errors": [{"field": "agent_id", "message": "conflicts with prompt_id"}]},
        )
    row = await agent_rows.get_agent(conn, req.agent_id, user_id)
    if row is None:
        raise NotFound("agent not found")
    stored = ResolvedPrompt(
        messages=[{"role": "system", "content": row["system_prompt"]}],
        model=row["model"] or row["default_model"],
        settings=row["settings"],
        name=row["name"],
        cache_version=row["updated_at"].isoformat(),
        agent_id=row["id"],
        tools=row["tools"],
    )
    scope = req.scope or (Scope(org_id=row["org_id"]) if row["org_id"] else None)
    given = {**row["variables"], **req.variables}
    return await render_stored(conn, user_id, stored, row["definitions"], given, scope)


def tools_of(req: ExecuteRequest, prompt: ResolvedPrompt) -> list[Tool] | None:
    """The tools a run offers the model: the request's, else its agent template's."""
    if req.tools:
        return req.tools
    return [Tool.model_validate(t) for t in prompt.tools] or None
