"""Stored prompts, their versions, and the builtins."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def get_prompt_version(conn: asyncpg.Connection | asyncpg.Pool, prompt_id: UUID,
                             user_id: UUID, version: int | None) -> asyncpg.Record | None:
    """The pinned version, or the published one when none is pinned; owner-scoped."""
    return await conn.fetchrow(
        "SELECT p.id, p.name, p.status, v.version, v.messages, v.model, v.settings, v.variables"
        " FROM prompts p JOIN prompt_versions v ON v.prompt_id = p.id"
        " WHERE p.id = $1 AND p.user_id = $2"
        "   AND v.version = COALESCE($3::int, p.published_version)",
        prompt_id, user_id, version,
    )


async def get_builtin(conn: asyncpg.Connection | asyncpg.Pool,
                      name_or_id: str) -> asyncpg.Record | None:
    """A builtin by name or by id."""
    return await conn.fetchrow(
        "SELECT id, name, description, messages, model, settings, variables FROM prompt_builtins"
        " WHERE name = $1 OR id::text = $1",
        name_or_id,
    )


async def upsert_builtin(conn: asyncpg.Connection, name: str, description: str,
                         messages: list[dict[str, str]], model: str | None,
                         settings: dict[str, object], variables: list[dict[str, object]],
                         builtin_id: UUID) -> None:
    await conn.execute(
        "INSERT INTO prompt_builtins (id, name, description, messages, model, settings, variables)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET"
        " description = EXCLUDED.description, messages = EXCLUDED.messages,"
        " model = EXCLUDED.model, settings = EXCLUDED.settings,"
        " variables = EXCLUDED.variables, updated_at = now()",
        builtin_id, name, description, messages, model, settings, variables,
    )
