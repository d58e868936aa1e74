"""Who owns a prompt and who may do what with it (docs/prompts.md "Team libraries").

A prompt is its author's, an organization's or a project's. Its author (for a personal
prompt) or an admin of the owning team writes it: create, edit, publish, archive, delete.
A member of the team reads and runs it. Anyone else gets `not_found`, exactly as for a
prompt that does not exist. Every check reads membership at the moment of the request, so a
removed member loses access with their next request.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db import orgs as org_rows
from db import prompts as prompt_rows
from engine.errors import Forbidden, InvalidRequest, NotFound


async def new_prompt_owner(
    pool: asyncpg.Pool, user_id: UUID, org_id: UUID | None, project_id: UUID | None
) -> tuple[UUID | None, UUID | None]:
    """(org_id, project_id) of a prompt about to be created; the caller must be an admin."""
    if org_id is not None and project_id is not None:
        raise InvalidRequest(
            "give at most one of org_id and project_id",
            details={"errors": [{"field": "project_id", "message": "conflicts with org_id"}]},
        )
    if org_id is not None:
        role = await org_rows.org_role(pool, org_id, user_id)
        if role is None:
            raise NotFound("organization not found")
        _require_admin(role)
    if project_id is not None:
        row = await org_rows.project_roles(pool, project_id, user_id)
        if row is None or (row["project_role"] is None and row["org_role"] != "admin"):
            raise NotFound("project not found")
        _require_admin("admin" if row["org_role"] == "admin" else str(row["project_role"]))
    return org_id, project_id


async def require_writer(pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID) -> None:
    """`not_found` unless the caller may read the prompt, `forbidden` unless they may write."""
    role = await prompt_rows.prompt_role(pool, prompt_id, user_id)
    if role is None:
        raise NotFound("prompt not found")
    _require_admin(role)


def _require_admin(role: str) -> None:
    if role != "admin":
        raise Forbidden("only an admin of the team that owns a prompt may change it")


def owner_filter(owner: str | None) -> tuple[str | None, UUID | None]:
    """`owner` of a prompt list: `me`, `org:<id>`, `project:<id>` or absent (everything)."""
    if owner is None:
        return None, None
    kind, _, raw = owner.partition(":")
    try:
        if kind == "me" and not raw:
            return "me", None
        if kind in ("org", "project"):
            return kind, UUID(raw)
    except ValueError:
        pass
    raise InvalidRequest(
        "unknown owner",
        details={"errors": [{"field": "owner", "message": "me, org:<id> or project:<id>"}]},
    )
