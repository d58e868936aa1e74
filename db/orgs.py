"""Organizations, projects and their members."""

from __future__ import annotations

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
