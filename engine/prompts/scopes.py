"""Organizations, projects, members and scoped variables: who may read and write what.

Members read org and project variables; only admins write them and add members. An org or
project the caller is not a member of answers `not_found`, exactly as one that does not
exist (docs/protocol.md: never leak which).
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import asyncpg

from db import invitations as invitation_rows
from db import orgs as org_rows
from db import variables as variable_rows
from engine.errors import Forbidden, InvalidRequest, NotFound
from engine.prompts.models import MemberAdd
from engine.prompts.template import format_value
from engine.protocol import paging
from engine.protocol.requests import Scope


async def create_org(pool: asyncpg.Pool, user_id: UUID, name: str, cap: int) -> UUID:
    """A new org with its creator as admin, unless the user already created `cap`."""
    org_id = uuid.uuid4()
    async with pool.acquire() as conn:
        if not await org_rows.create_org(conn, org_id, name, user_id, cap):
            message = f"at most {cap} organizations created per user"
            raise InvalidRequest(
                message,
                details={
                    "limit": "orgs",
                    "max": cap,
                    "errors": [{"field": "(body)", "message": message}],
                },
            )
    return org_id


async def _org_role(pool: asyncpg.Pool, org_id: UUID, user_id: UUID) -> str:
    role = await org_rows.org_role(pool, org_id, user_id)
    if role is None:
        raise NotFound("organization not found")
    return role


async def _project_role(pool: asyncpg.Pool, project_id: UUID, user_id: UUID) -> str:
    """The caller's role in a project; an org admin is an admin of its projects."""
    row = await org_rows.project_roles(pool, project_id, user_id)
    if row is None or (row["project_role"] is None and row["org_role"] != "admin"):
        raise NotFound("project not found")
    return "admin" if row["org_role"] == "admin" else str(row["project_role"])


def _require_admin(role: str, what: str) -> None:
    if role != "admin":
        raise Forbidden(f"only an admin of the {what} may change it")


async def add_org_member(
    pool: asyncpg.Pool, user_id: UUID, org_id: UUID, member: MemberAdd
) -> None:
    _require_admin(await _org_role(pool, org_id, user_id), "organization")
    # By invitation, and the same answer whether the user exists (ids are not confirmed).
    await invitation_rows.invite(pool, "org", org_id, member.user_id, member.role, user_id)


async def create_project(pool: asyncpg.Pool, user_id: UUID, org_id: UUID, name: str) -> UUID:
    _require_admin(await _org_role(pool, org_id, user_id), "organization")
    project_id = uuid.uuid4()
    async with pool.acquire() as conn:
        await org_rows.create_project(conn, project_id, org_id, name, user_id)
    return project_id


async def add_project_member(
    pool: asyncpg.Pool, user_id: UUID, project_id: UUID, member: MemberAdd
) -> None:
    _require_admin(await _project_role(pool, project_id, user_id), "project")
    await invitation_rows.invite(pool, "project", project_id, member.user_id, member.role, user_id)


async def _owner(
    pool: asyncpg.Pool, user_id: UUID, scope: str, owner_id: UUID | None, write: bool
) -> UUID:
    """The id whose variables are meant, after checking the caller may read / write them."""
    if scope == "user" or owner_id is None:
        return user_id
    if scope == "org":
        role = await _org_role(pool, owner_id, user_id)
    else:
        role = await _project_role(pool, owner_id, user_id)
    if write:
        _require_admin(role, "organization" if scope == "org" else "project")
    return owner_id


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return {"name": row["name"], "value": row["value"], "updated_at": row["updated_at"].isoformat()}


async def list_variables(
    pool: asyncpg.Pool,
    user_id: UUID,
    scope: str,
    owner_id: UUID | None,
    *,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """`{items, next_cursor}` of one scope's variables, by name."""
    owner = await _owner(pool, user_id, scope, owner_id, write=False)
    rows = await variable_rows.list_values(
        pool, scope, owner, after=paging.decode(cursor) or "", limit=limit + 1
    )
    return paging.page(rows, limit, _view, lambda r: str(r["name"]))


async def set_variable(
    pool: asyncpg.Pool, user_id: UUID, scope: str, owner_id: UUID | None, name: str, value: object
) -> dict[str, Any]:
    owner = await _owner(pool, user_id, scope, owner_id, write=True)
    # NUL characters and non-finite numbers were refused when the body was decoded.
    return _view(await variable_rows.set_value(pool, scope, owner, name, format_value(value)))


async def delete_variable(
    pool: asyncpg.Pool, user_id: UUID, scope: str, owner_id: UUID | None, name: str
) -> None:
    owner = await _owner(pool, user_id, scope, owner_id, write=True)
    if not await variable_rows.delete_value(pool, scope, owner, name):
        raise NotFound("variable not found")


async def execution_scope(
    pool: asyncpg.Pool | asyncpg.Connection, user_id: UUID, scope: Scope | None
) -> tuple[UUID | None, UUID | None]:
    """(org_id, project_id) whose variables an execute may use.

    A named org or project the caller is not a member of is `not_found` (an org admin is
    a member of the org's projects). A project alone brings its org's values too when the
    caller is also a member of that org.
    """
    if scope is None or (scope.org_id is None and scope.project_id is None):
        return None, None
    org_id = scope.org_id
    if org_id is not None and await org_rows.org_role(pool, org_id, user_id) is None:
        raise NotFound("organization not found")
    if scope.project_id is None:
        return org_id, None
    row = await org_rows.project_roles(pool, scope.project_id, user_id)
    if row is None or (row["project_role"] is None and row["org_role"] != "admin"):
        raise NotFound("project not found")
    if org_id is not None and row["org_id"] != org_id:
        raise InvalidRequest(
            "the project does not belong to that organization",
            details={
                "errors": [
                    {"field": "scope.project_id", "message": "not a project of scope.org_id"}
                ]
            },
        )
    return (row["org_id"] if row["org_role"] is not None else None), scope.project_id


async def list_invitations(pool: asyncpg.Pool, user_id: UUID, limit: int) -> dict[str, Any]:
    rows = await invitation_rows.for_user(pool, user_id, limit)
    return {
        "items": [
            {
                "id": str(r["id"]),
                "kind": "org" if r["org_id"] is not None else "project",
                "target_id": str(r["org_id"] or r["project_id"]),
                "name": r["name"],
                "role": r["role"],
                "invited_at": r["created_at"].isoformat(),
            }
            for r in rows
        ]
    }


async def accept_invitation(
    pool: asyncpg.Pool, user_id: UUID, invitation_id: UUID
) -> dict[str, Any]:
    """Join as invited; another user's or an unknown invitation is `not_found`."""
    async with pool.acquire() as conn:
        row = await invitation_rows.accept(conn, invitation_id, user_id)
    if row is None:
        raise NotFound("invitation not found")
    kind = "org" if row["org_id"] is not None else "project"
    return {"kind": kind, "target_id": str(row["org_id"] or row["project_id"]), "role": row["role"]}
