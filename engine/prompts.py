"""Resolve a stored prompt or builtin and render it with the request's variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from db import prompts as prompt_rows
from engine import template
from engine.errors import InvalidRequest, MissingVariables, NotFound
from engine.protocol import ExecuteRequest


@dataclass(frozen=True)
class ResolvedPrompt:
    messages: list[dict[str, str]]
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    prompt_id: UUID | None = None
    version: int | None = None
    builtin: str | None = None
    name: str = ""


async def resolve_prompt(conn: asyncpg.Pool | asyncpg.Connection, user_id: UUID,
                         req: ExecuteRequest) -> ResolvedPrompt:
    """The rendered prompt messages of the request (empty for an ad-hoc call)."""
    if req.prompt_id is not None and req.builtin is not None:
        raise InvalidRequest(
            "give at most one of prompt_id and builtin",
            details={"errors": [{"field": "builtin", "message": "conflicts with prompt_id"}]},
        )
    if req.prompt_id is not None:
        row = await prompt_rows.get_prompt_version(conn, req.prompt_id, user_id, req.version)
        if row is None:
            raise NotFound("prompt or version not found")
        resolved = ResolvedPrompt(
            messages=row["messages"], model=row["model"], settings=row["settings"],
            prompt_id=row["id"], version=row["version"], name=row["name"],
        )
        definitions = row["variables"]
    elif req.builtin is not None:
        row = await prompt_rows.get_builtin(conn, req.builtin)
        if row is None:
            raise NotFound("builtin not found")
        resolved = ResolvedPrompt(messages=row["messages"], model=row["model"],
                                  settings=row["settings"], builtin=row["name"],
                                  name=row["name"])
        definitions = row["variables"]
    else:
        if not req.messages:
            raise InvalidRequest(
                "an ad-hoc execute needs messages",
                details={"errors": [{"field": "messages", "message": "required"}]},
            )
        return ResolvedPrompt(messages=[])
    values = variable_values(definitions, req.variables)
    absent = template.missing((m["content"] for m in resolved.messages), values)
    if absent:
        raise MissingVariables("variables without a value: " + ", ".join(absent),
                               details={"missing": absent})
    rendered = [{"role": m["role"], "content": template.render(m["content"], values)}
                for m in resolved.messages]
    return ResolvedPrompt(
        messages=rendered, model=resolved.model, settings=resolved.settings,
        variables=values, prompt_id=resolved.prompt_id, version=resolved.version,
        builtin=resolved.builtin, name=resolved.name,
    )


def variable_values(definitions: list[dict[str, Any]], given: dict[str, Any]) -> dict[str, Any]:
    """Definition defaults under the request's values."""
    values = {d["name"]: d["default"] for d in definitions if d.get("default") is not None}
    values.update(given)
    return values
