"""Removing members from organizations and projects."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from db.pool import TxConnection

Removal = Literal["removed", "absent", "last_admin"]


async def remove_org_member(conn: TxConnection, org_id: UUID, user_id: UUID) -> Removal:
    """Remove the member, unless they are the org's last admin. The org row is locked, so two
    admins removing each other at once cannot leave the org without one."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE", org_id)
        role = await conn.fetchval(
            "SELECT role FROM organization_members WHERE org_id = $1 AND user_id = $2",
            org_id,
            user_id,
        )
        if role is None:
            return "absent"
        if role == "admin":
            others = await conn.fetchval(
                "SELECT count(*) FROM organization_members"
                " WHERE org_id = $1 AND role = 'admin' AND user_id <> $2",
                org_id,
                user_id,
            )
            if others == 0:
                return "last_admin"
        await conn.execute(
            "DELETE FROM organization_members WHERE org_id = $1 AND user_id = $2",
            org_id,
            user_id,
        )
    return "removed"


async def remove_project_member(conn: TxConnection, project_id: UUID, user_id: UUID) -> Removal:
    """Remove a project member (the org's admins stay admins of the project through the org)."""
    row = await conn.fetchval(
        "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2 RETURNING user_id",
        project_id,
        user_id,
    )
    return "removed" if row is not None else "absent"
