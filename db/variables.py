"""Scoped variables: user, org and project values (seed 000), read with membership checks."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

# One table and key column per scope; fixed strings, never built from input.
_TABLES = {
    "user": ("user_variables", "user_id"),
    "org": ("org_variables", "org_id"),
    "project": ("project_variables", "project_id"),
}


async def scoped_values(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: UUID,
    org_id: UUID | None,
    project_id: UUID | None,
) -> dict[str, dict[str, str]]:
    """Values by scope. Org and project values come only where the user is a member (an
    org admin counts as a member of the org's projects)."""
    rows = await conn.fetch(
        "SELECT 'user' AS scope, name, value FROM user_variables WHERE user_id = $1"
        " UNION ALL SELECT 'org', v.name, v.value FROM org_variables v"
        "   JOIN organization_members m ON m.org_id = v.org_id AND m.user_id = $1"
        "   WHERE v.org_id = $2"
        " UNION ALL SELECT 'project', v.name, v.value FROM project_variables v"
        "   JOIN projects p ON p.id = v.project_id WHERE v.project_id = $3 AND ("
        "     EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = p.id"
        "             AND m.user_id = $1)"
        "     OR EXISTS (SELECT 1 FROM organization_members o WHERE o.org_id = p.org_id"
        "                AND o.user_id = $1 AND o.role = 'admin'))",
        user_id,
        org_id,
        project_id,
    )
    out: dict[str, dict[str, str]] = {"user": {}, "org": {}, "project": {}}
    for row in rows:
        out[row["scope"]][row["name"]] = row["value"]
    return out


async def list_values(
    conn: asyncpg.Connection | asyncpg.Pool, scope: str, owner_id: UUID, *, after: str, limit: int
) -> list[asyncpg.Record]:
    """One scope's variables with names after `after`, by name."""
    table, column = _TABLES[scope]
    return await conn.fetch(
        f"SELECT name, value, updated_at FROM {table} WHERE {column} = $1"
        ' AND name COLLATE "C" > $2 ORDER BY name COLLATE "C" LIMIT $3',
        owner_id,
        after,
        limit,
    )


async def set_value(
    conn: asyncpg.Connection | asyncpg.Pool, scope: str, owner_id: UUID, name: str, value: str
) -> asyncpg.Record:
    table, column = _TABLES[scope]
    row = await conn.fetchrow(
        f"INSERT INTO {table} ({column}, name, value) VALUES ($1, $2, $3)"
        f" ON CONFLICT ({column}, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
        " RETURNING name, value, updated_at",
        owner_id,
        name,
        value,
    )
    assert row is not None
    return row


async def delete_value(
    conn: asyncpg.Connection | asyncpg.Pool, scope: str, owner_id: UUID, name: str
) -> bool:
    table, column = _TABLES[scope]
    found: Any = await conn.fetchval(
        f"DELETE FROM {table} WHERE {column} = $1 AND name = $2 RETURNING name",
        owner_id,
        name,
    )
    return found is not None
