"""What an `execute` runs: a stored prompt, a builtin, ad-hoc messages, or an agent.

An agent's system prompt is its template's, rendered through the generated-prompt cache with
the request's values over the agent's over the scoped layers (an org's agent takes its org's
variables); its model is the request's, else the agent's override, else the template's, and
its tools the request's, else the template's.

The rendered system prompt leads every model call of the agent, also in an existing run: it
takes the place of the system messages the run's history starts with (an earlier render, or
the prompt of whatever started the run), and the run stores it once, on its first turn.
"""

from __future__ import annotations

from typing import Any
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


def turn_messages(
    prompt: ResolvedPrompt, history: list[dict[str, Any]], given: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The history to send before the new messages, and the new messages (which the run
    stores). A new run starts with the prompt's messages; in an existing run a stored prompt's
    messages were sent on its first turn and are in the history, while an agent's system
    prompt replaces the history's leading system messages, so that it leads every call
    without being stored again."""
    if not history:
        return history, [*prompt.messages, *given]
    if prompt.agent_id is None:
        return history, given
    start = 0
    while start < len(history) and history[start].get("role") == "system":
        start += 1
    return [*prompt.messages, *history[start:]], given
