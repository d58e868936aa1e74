"""Resolve a stored prompt or builtin and render it with the request's variables."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

import asyncpg

from db import prompts as prompt_rows
from db import variables as variable_rows
from engine.errors import InvalidRequest, MissingVariables, NotFound
from engine.prompts import render_cache, template, variables
from engine.prompts.scopes import execution_scope
from engine.protocol.requests import ExecuteRequest, Scope


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
    validations: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    cache_version: str = ""
    agent_id: UUID | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)  # an agent's, for its runs

    def identity(self) -> str:
        """What the render cache keys this prompt by (with `cache_version`)."""
        if self.agent_id is not None:
            return f"agent:{self.agent_id}"
        return str(self.prompt_id) if self.prompt_id else f"builtin:{self.builtin}"

    def events(self) -> list[dict[str, Any]]:
        """The `prompt_resolved` execution-log entry (nothing for an ad-hoc call)."""
        if self.prompt_id is None and self.builtin is None and self.agent_id is None:
            return []
        return [
            {
                "kind": "prompt_resolved",
                "message": f"prompt {self.name!r} resolved",
                "metadata": {
                    "prompt_id": str(self.prompt_id) if self.prompt_id else None,
                    "version": self.version,
                    "builtin": self.builtin,
                    "agent_id": str(self.agent_id) if self.agent_id else None,
                    "variable_sources": self.sources,
                },
            }
        ]


async def resolve_prompt(
    conn: asyncpg.Pool | asyncpg.Connection, user_id: UUID, req: ExecuteRequest
) -> ResolvedPrompt:
    """The rendered prompt messages of the request (empty for an ad-hoc call).

    Every check (not found, scope, missing and mistyped variables) happens here, before
    any row is written or any provider called.
    """
    if req.prompt_id is not None and req.builtin is not None:
        raise InvalidRequest(
            "give at most one of prompt_id and builtin",
            details={"errors": [{"field": "builtin", "message": "conflicts with prompt_id"}]},
        )
    if req.prompt_id is None and req.builtin is None:
        if not req.messages:
            raise InvalidRequest(
                "an ad-hoc execute needs messages",
                details={"errors": [{"field": "messages", "message": "required"}]},
            )
        # No variables to take from it, but a scope that is unknown or someone else's is
        # `not_found` on every execute, never silently ignored.
        await execution_scope(conn, user_id, req.scope)
        return ResolvedPrompt(messages=[])
    stored, definitions, owner = await _stored(conn, user_id, req)
    # A team's prompt takes its team's variables unless the request names a scope.
    return await render_stored(
        conn, user_id, stored, definitions, req.variables, req.scope or owner
    )


async def render_stored(
    conn: asyncpg.Pool | asyncpg.Connection,
    user_id: UUID,
    stored: ResolvedPrompt,
    definitions: list[dict[str, Any]],
    given: dict[str, Any],
    scope: Scope | None,
) -> ResolvedPrompt:
    """Resolve the variables of an unrendered prompt (`given` over the scoped layers),
    check them, and render the messages through the cache."""
    org_id, project_id = await execution_scope(conn, user_id, scope)
    scoped = await variable_rows.scoped_values(conn, user_id, org_id, project_id)
    resolved = variables.resolve(definitions, given, scoped)
    values = resolved.values
    used = template.placeholders(m["content"] for m in stored.messages)
    absent = list(
        dict.fromkeys(
            [n for n in used if n not in values] + variables.required_missing(definitions, values)
        )
    )
    if absent:
        raise MissingVariables(
            "variables without a value: " + ", ".join(absent), details={"missing": absent}
        )
    errors = variables.check(definitions, values, resolved.sources)
    if errors:
        raise InvalidRequest("variables break their definitions", details={"errors": errors})
    recorded = _recorded(values, used, definitions, given)
    identity = stored.identity()
    rendered = await render_cache.rendered(
        conn,
        identity,
        stored.cache_version,
        stored.prompt_id,
        stored.version,
        stored.messages,
        values,
    )
    return replace(
        stored,
        messages=rendered,
        variables=recorded,
        sources={n: resolved.sources[n] for n in recorded},
    )


async def _stored(
    conn: asyncpg.Pool | asyncpg.Connection, user_id: UUID, req: ExecuteRequest
) -> tuple[ResolvedPrompt, list[dict[str, Any]], Scope | None]:
    """The unrendered prompt or builtin, its variable definitions and its owner's scope."""
    if req.prompt_id is not None:
        row = await prompt_rows.get_prompt_version(conn, req.prompt_id, user_id, req.version)
        if row is None:
            raise NotFound("prompt or version not found")
        return (
            ResolvedPrompt(
                messages=row["messages"],
                model=row["model"],
                settings=row["settings"],
                prompt_id=row["id"],
                version=row["version"],
                name=row["name"],
                validations=row["validations"],
                cache_version=str(row["version"]),
            ),
            row["variables"],
            _owner_scope(row),
        )
    row = await prompt_rows.get_builtin(conn, req.builtin or "")
    if row is None:
        raise NotFound("builtin not found")
    return (
        ResolvedPrompt(
            messages=row["messages"],
            model=row["model"],
            settings=row["settings"],
            builtin=row["name"],
            name=row["name"],
            validations=row["validations"],
            cache_version=row["updated_at"].isoformat(),
        ),
        row["variables"],
        None,
    )


def _owner_scope(row: asyncpg.Record) -> Scope | None:
    if row["org_id"] is None and row["project_id"] is None:
        return None
    return Scope(org_id=row["org_id"], project_id=row["project_id"])


def _recorded(
    values: dict[str, Any],
    used: list[str],
    definitions: list[dict[str, Any]],
    given: dict[str, Any],
) -> dict[str, Any]:
    """The values kept on the run: those the prompt uses or defines, and all given ones.

    Other scoped values of the user (which may be private) are not copied onto the run.
    """
    names = [*used, *(d["name"] for d in definitions), *given]
    return {name: values[name] for name in dict.fromkeys(names) if name in values}
