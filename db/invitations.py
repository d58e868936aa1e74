"""Invitations to an org or a project: written by an admin, accepted by the invited user."""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

import asyncpg

from db.pool import TxConnection

Conn = asyncpg.Connection | asyncpg.Pool


_INVITE_SQL = {
    kind: (
        f"UPDATE {members} SET role = $3 WHERE {column} = $1 AND user_id = $2",
        f"INSERT INTO member_invitations (id, {column}, user_id, role, invited_by)"
        " SELECT $1, $2, $3, $4, $5 WHERE EXISTS"
        "   (SELECT 1 FROM users WHERE id = $3 AND deleted_at IS NULL)"
        f" ON CONFLICT ({column}, user_id) WHERE {column} IS NOT NULL"
        " DO UPDATE SET role = EXCLUDED.role, invited_by = EXCLUDED.invited_by",
    )
    for kind, members, column in (
        ("org", "organization_members", "org_id"),
        ("project", "project_members", "project_id"),
    )
}  # two fixed statements per kind, written once at import


async def invite(
    conn: Conn, kind: str, target_id: UUID, user_id: UUID, role: str, invited_by: UUID
) -> None:
    """Invite a user that exists (a second invitation replaces the role); `kind` is `org`
    or `project`. An existing member's role changes at once instead."""
    change_role, insert = _INVITE_SQL[kind]
    if await conn.execute(change_role, target_id, user_id, role) != "UPDATE 0":
        return
    await conn.execute(insert, uuid.uuid4(), target_id, user_id, role, invited_by)


async def for_user(conn: Conn, user_id: UUID, limit: int) -> list[asyncpg.Record]:
    """The user's open invitations, oldest first, with the org's or project's name."""
    return await conn.fetch(
        "SELECT i.id, i.org_id, i.project_id, i.role, i.created_at,"
        " coalesce(o.name, p.name) AS name"
        " FROM member_invitations i"
        " LEFT JOIN organizations o ON o.id = i.org_id"
        " LEFT JOIN projects p ON p.id = i.project_id"
        " WHERE i.user_id = $1 ORDER BY i.created_at, i.id LIMIT $2",
        user_id,
        limit,
    )


async def accept(conn: TxConnection, invitation_id: UUID, user_id: UUID) -> asyncpg.Record | None:
    """Make the user a member as invited and drop the invitation; None if it is not theirs."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "DELETE FROM member_invitations WHERE id = $1 AND user_id = $2"
            " RETURNING org_id, project_id, role",
            invitation_id,
            user_id,
        )
        if row is None:
            return None
        if row["org_id"] is not None:
            await conn.execute(
                "INSERT INTO organization_members (org_id, user_id, role) VALUES ($1, $2, $3)"
                " ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role",
                row["org_id"],
                user_id,
                row["role"],
            )
        else:
            await conn.execute(
                "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)"
                " ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role",
                row["project_id"],
                user_id,
                row["role"],
            )
        return row


async def for_org(
    conn: Conn, org_id: UUID, after: tuple[datetime, UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """The org's open invitations (to the org itself), oldest first, after the
    (created_at, id) given."""
    return await conn.fetch(
        "SELECT i.id, i.user_id, u.email, i.role, i.invited_by, i.created_at"
        " FROM member_invitations i JOIN users u ON u.id = i.user_id"
        " WHERE i.org_id = $1 AND ($2::timestamptz IS NULL OR (i.created_at, i.id) > ($2, $3))"
        " ORDER BY i.created_at, i.id LIMIT $4",
        org_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
