"""The prompt library: personal and team prompts with immutable versions, and the builtins."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import asyncpg

from db import prompts as prompt_rows
from engine.errors import InvalidRequest, NotFound
from engine.prompts.models import PromptCreate, PromptFields, PromptUpdate, validation_specs
from engine.prompts.owners import new_prompt_owner, owner_filter, require_writer
from engine.protocol import paging

STATUSES = ("draft", "published", "archived")


def _content(
    body: PromptFields, base: dict[str, Any] | None, change_log: str = ""
) -> prompt_rows.VersionContent:
    """A version's content: the body's fields over `base` (the latest version's)."""
    base = base or {}

    def pick(name: str, value: Any) -> Any:
        return value if name in body.model_fields_set else base.get(name)

    messages = (
        [m.model_dump() for m in body.messages]
        if body.messages is not None
        else base.get("messages", [])
    )
    settings = (
        body.settings.model_dump(exclude_none=True, by_alias=True)
        if body.settings is not None
        else base.get("settings", {})
    )
    variables = (
        [v.model_dump(exclude_none=True) for v in body.variables]
        if body.variables is not None
        else base.get("variables", [])
    )
    validations = (
        validation_specs(body.validations)
        if body.validations is not None
        else base.get("validations", [])
    )
    return prompt_rows.VersionContent(
        messages=messages,
        model=pick("model", body.model),
        settings=settings or {},
        variables=variables or [],
        validations=validations or [],
        change_log=change_log,
    )


def prompt_view(row: asyncpg.Record) -> dict[str, Any]:
    """A prompt with one version's body (docs/protocol.md `GET /v1/prompts/{id}`)."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "description": row["description"],
        "tags": list(row["tags"]),
        "status": row["status"],
        "version": row["version"],
        "latest_version": row["latest_version"],
        "published_version": row["published_version"],
        "messages": row["messages"],
        "model": row["model"],
        "settings": row["settings"],
        "variables": row["variables"],
        "validations": row["validations"],
        "change_log": row["change_log"],
        "org_id": str(row["org_id"]) if row["org_id"] else None,
        "project_id": str(row["project_id"]) if row["project_id"] else None,
        "role": row["role"],
        "forked_from": (
            {
                "prompt_id": str(row["forked_from_prompt"]) if row["forked_from_prompt"] else None,
                "version": row["forked_from_version"],
            }
            if row["forked_from_version"] is not None
            else None
        ),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def create(pool: asyncpg.Pool, user_id: UUID, body: PromptCreate) -> dict[str, Any]:
    owner = await new_prompt_owner(pool, user_id, body.org_id, body.project_id)
    prompt_id = uuid.uuid4()
    async with pool.acquire() as conn:
        await prompt_rows.create_prompt(
            conn,
            prompt_id,
            user_id,
            body.name,
            body.description or "",
            body.tags or [],
            _content(body, None, "created"),
            owner,
        )
    return await get(pool, user_id, prompt_id)


async def get(
    pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID, version: int | None = None
) -> dict[str, Any]:
    row = await prompt_rows.get_prompt(pool, prompt_id, user_id, version)
    if row is None:
        raise NotFound("prompt or version not found")
    return prompt_view(row)


async def update(
    pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID, body: PromptUpdate
) -> dict[str, Any]:
    """Write the next immutable version (`version` + 1) with the body over the latest."""
    await require_writer(pool, user_id, prompt_id)
    latest = await get(pool, user_id, prompt_id)
    header = {
        "name": body.name or latest["name"],
        "description": (
            body.description if body.description is not None else latest["description"]
        ),
        "tags": body.tags if body.tags is not None else latest["tags"],
    }
    async with pool.acquire() as conn:
        version = await prompt_rows.add_version(
            conn, prompt_id, user_id, header, _content(body, latest, body.change_log)
        )
    if version is None:
        raise NotFound("prompt not found")
    return await get(pool, user_id, prompt_id, version)


async def versions(
    pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`{items, next_cursor}` of a prompt's versions, oldest first."""
    await get(pool, user_id, prompt_id)
    position = paging.decode(cursor)
    if position is not None and not position.isdigit():
        raise paging.bad_cursor()
    rows = await prompt_rows.list_versions(
        pool, prompt_id, user_id, after=int(position or 0), limit=limit + 1
    )
    return paging.page(rows, limit, _version_view, lambda r: str(r["version"]))


def _version_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "version": row["version"],
        "change_log": row["change_log"],
        "model": row["model"],
        "created_at": row["created_at"].isoformat(),
    }


async def publish(
    pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID, version: int
) -> dict[str, Any]:
    await require_writer(pool, user_id, prompt_id)
    if not await prompt_rows.publish(pool, prompt_id, user_id, version):
        raise NotFound("prompt or version not found")
    return await get(pool, user_id, prompt_id)


async def archive(pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID) -> dict[str, Any]:
    await require_writer(pool, user_id, prompt_id)
    if not await prompt_rows.archive(pool, prompt_id, user_id):
        raise NotFound("prompt not found")
    return await get(pool, user_id, prompt_id)


async def delete(pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID) -> None:
    await require_writer(pool, user_id, prompt_id)
    async with pool.acquire() as conn:
        if not await prompt_rows.delete_prompt(conn, prompt_id, user_id):
            raise NotFound("prompt not found")


async def list_page(
    pool: asyncpg.Pool,
    user_id: UUID,
    *,
    status: str | None,
    tag: str | None,
    text: str | None,
    owner: str | None = None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """`{items, next_cursor}` of the prompts the caller may read (their own and their teams'),
    newest first; `owner` keeps one owner's (`me`, `org:<id>`, `project:<id>`)."""
    if status is not None and status not in STATUSES:
        raise InvalidRequest(
            "unknown status",
            details={"errors": [{"field": "status", "message": "one of " + ", ".join(STATUSES)}]},
        )
    kind, owner_id = owner_filter(owner)
    where = prompt_rows.PromptFilter(
        status=status, tag=tag, text=text, owner=kind, owner_id=owner_id
    )
    rows = await prompt_rows.list_prompts(
        pool, user_id, where, limit=limit + 1, after=paging.after_time_and_id(cursor)
    )
    return paging.page(rows, limit, prompt_view, paging.by_time_and_id("created_at", "id"))
