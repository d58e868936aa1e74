"""Organizations, projects and their members."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from db.pool import TxConnection


async def create_org(
    conn: TxConnection, org_id: UUID, name: str, user_id: UUID, cap: int | None = None
) -> bool:
    """The org, with its creator as `admin`; False when the user already created `cap`
    (counted under a per-user advisory lock, so a burst cannot pass the cap together)."""
    async with conn.transaction():
        if cap is not None:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 2))", str(user_id)
            )
            made = await conn.fetchval(
                "SELECT count(*) FROM organizations WHERE created_by = $1", user_id
            )
            if made >= cap:
                return False
        await conn.execute(
            "INSERT INTO organizations (id, name, created_by) VALUES ($1, $2, $3)",
            org_id,
            name,
            user_id,
        )
        await conn.execute(
            "INSERT INTO organization_members (org_id, user_id, role) VALUES ($1, $2, 'admin')",
            org_id,
            user_id,
        )
    return True


async def org_role(
    conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID, user_id: UUID
) -> str | None:
    """The user's role in the org, or None when not a member."""
    role: str | None = await conn.fetchval(
        "SELECT role FROM organization_members WHERE org_id = $1 AND user_id = $2",
        org_id,
        user_id,
    )
    return role


async def project_roles(
    conn: asyncpg.Connection | asyncpg.Pool, project_id: UUID, user_id: UUID
) -> asyncpg.Record | None:
    """`{org_id, project_role, org_role}` of the user for a project, or None if no project."""
    return await conn.fetchrow(
        "SELECT p.org_id,"
        " (SELECT role FROM project_members WHERE project_id = p.id AND user_id = $2)"
        "   AS project_role,"
        " (SELECT role FROM organization_members WHERE org_id = p.org_id AND user_id = $2)"
        "   AS org_role"
        " FROM projects p WHERE p.id = $1",
        project_id,
        user_id,
    )


async def user_exists(conn: asyncpg.Connection | asyncpg.Pool, user_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)",
            user_id,
        )
    )


async def add_org_member(
    conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID, user_id: UUID, role: str
) -> None:
    await conn.execute(
        "INSERT INTO organization_members (org_id, user_id, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        org_id,
        user_id,
        role,
    )


async def create_project(
    conn: TxConnection, project_id: UUID, org_id: UUID, name: str, user_id: UUID
) -> None:
    """The project, with its creator as `admin`."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO projects (id, org_id, name) VALUES ($1, $2, $3)",
            project_id,
            org_id,
            name,
        )
        await add_project_member(conn, project_id, user_id, "admin")


async def add_project_member(
    conn: TxConnection | asyncpg.Pool, project_id: UUID, user_id: UUID, role: str
) -> None:
    await conn.execute(
        "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        project_id,
        user_id,
        role,
    )


async def orgs_of(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: UUID,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The user's orgs with the user's role, oldest first, after the (created_at, id) given."""
    return await conn.fetch(
        "SELECT o.id, o.name, o.created_at, m.role FROM organizations o"
        " JOIN organization_members m ON m.org_id = o.id AND m.user_id = $1"
        " WHERE $2::timestamptz IS NULL OR (o.created_at, o.id) > ($2, $3)"
        " ORDER BY o.created_at, o.id LIMIT $4",
        user_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def projects_of(
    conn: asyncpg.Connection | asyncpg.Pool,
    org_id: UUID,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The org's projects, oldest first, after the (created_at, id) given."""
    return await conn.fetch(
        "SELECT id, org_id, name, created_at FROM projects WHERE org_id = $1"
        " AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))"
        " ORDER BY created_at, id LIMIT $4",
        org_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def members_of(
    conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID, after: UUID | None, limit: int
) -> list[asyncpg.Record]:
    """The org's members (deleted users left out) by user id, after the id given."""
    return await conn.fetch(
        "SELECT m.user_id, u.email, m.role FROM organization_members m"
        " JOIN users u ON u.id = m.user_id AND u.deleted_at IS NULL"
        " WHERE m.org_id = $1 AND ($2::uuid IS NULL OR m.user_id > $2)"
        " ORDER BY m.user_id LIMIT $3",
        org_id,
        after,
        limit,
    )
