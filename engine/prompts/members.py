"""Removing a member of an org or project (docs/protocol.md "Organizations, projects,
variables"). An admin removes anyone, a member removes only themselves (leaving); an org
keeps at least one admin. Access ends at once: every check reads membership per request."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db import members as member_rows
from db import orgs as org_rows
from engine.errors import Forbidden, InvalidRequest, NotFound


async def remove_org_member(pool: asyncpg.Pool, caller: UUID, org_id: UUID, target: UUID) -> None:
    role = await org_rows.org_role(pool, org_id, caller)
    if role is None:
        raise NotFound("organization not found")
    if role != "admin" and target != caller:
        raise Forbidden("only an admin of the organization may remove another member")
    async with pool.acquire() as conn:
        outcome = await member_rows.remove_org_member(conn, org_id, target)
    _check(outcome, "organization")


async def remove_project_member(
    pool: asyncpg.Pool, caller: UUID, project_id: UUID, target: UUID
) -> None:
    row = await org_rows.project_roles(pool, project_id, caller)
    if row is None or (row["project_role"] is None and row["org_role"] != "admin"):
        raise NotFound("project not found")
    is_admin = row["org_role"] == "admin" or row["project_role"] == "admin"
    if not is_admin and target != caller:
        raise Forbidden("only an admin of the project may remove another member")
    async with pool.acquire() as conn:
        outcome = await member_rows.remove_project_member(conn, project_id, target)
    _check(outcome, "project")


def _check(outcome: member_rows.Removal, what: str) -> None:
    if outcome == "absent":
        raise NotFound("member not found")
    if outcome == "last_admin":
        message = f"the {what}'s last admin cannot be removed"
        raise InvalidRequest(
            message, details={"errors": [{"field": "user_id", "message": message}]}
        )
