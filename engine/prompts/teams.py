"""What a team UI lists: the caller's orgs, and an org's projects, members and pending
invitations, paged. Only the org's members see its lists; anyone else gets `not_found`,
exactly as for an org that does not exist."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db import invitations as invitation_rows
from db import orgs as org_rows
from engine.errors import NotFound
from engine.protocol import paging


async def _require_member(pool: asyncpg.Pool, org_id: UUID, user_id: UUID) -> None:
    if await org_rows.org_role(pool, org_id, user_id) is None:
        raise NotFound("organization not found")


async def list_orgs(
    pool: asyncpg.Pool, user_id: UUID, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`GET /v1/orgs`: the caller's orgs with the caller's role, oldest first."""
    rows = await org_rows.orgs_of(pool, user_id, paging.after_time_and_id(cursor), limit + 1)
    return paging.page(rows, limit, _org_view, paging.by_time_and_id("created_at", "id"))


async def list_projects(
    pool: asyncpg.Pool, user_id: UUID, org_id: UUID, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`GET /v1/orgs/{id}/projects`: the org's projects, oldest first."""
    after = paging.after_time_and_id(cursor)
    await _require_member(pool, org_id, user_id)
    rows = await org_rows.projects_of(pool, org_id, after, limit + 1)
    return paging.page(rows, limit, _project_view, paging.by_time_and_id("created_at", "id"))


async def list_members(
    pool: asyncpg.Pool, user_id: UUID, org_id: UUID, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`GET /v1/orgs/{id}/members`: the org's members by user id."""
    after = paging.after_id(cursor)
    await _require_member(pool, org_id, user_id)
    rows = await org_rows.members_of(pool, org_id, after, limit + 1)
    return paging.page(rows, limit, _member_view, lambda r: str(r["user_id"]))


async def list_org_invitations(
    pool: asyncpg.Pool, user_id: UUID, org_id: UUID, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`GET /v1/orgs/{id}/invitations`: the org's invitations not yet accepted, oldest first."""
    after = paging.after_time_and_id(cursor)
    await _require_member(pool, org_id, user_id)
    rows = await invitation_rows.for_org(pool, org_id, after, limit + 1)
    return paging.page(rows, limit, _invitation_view, paging.by_time_and_id("created_at", "id"))


def _org_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "role": row["role"],
        "created_at": row["created_at"].isoformat(),
    }


def _project_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "org_id": str(row["org_id"]),
        "name": row["name"],
        "created_at": row["created_at"].isoformat(),
    }


def _member_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"user_id": str(row["user_id"]), "email": row["email"], "role": row["role"]}


def _invitation_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "user_id": str(row["user_id"]),
        "email": row["email"],
        "role": row["role"],
        "invited_by": str(row["invited_by"]),
        "invited_at": row["created_at"].isoformat(),
    }
