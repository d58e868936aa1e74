"""Public templates (docs/prompts.md "Public templates"): a prompt's admin publishes one of its
versions to every user's gallery; anyone forks it into their own or a team's library.

A fork copies the template's version as the new prompt's version 1 and keeps where it came
from; later versions of the template never change it. Only those who may write the prompt
publish, unpublish and see its fork and run counts.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import asyncpg

from db import templates as template_rows
from engine.errors import InvalidRequest, NotFound
from engine.prompts import library
from engine.prompts.gallery_models import ForkBody, TemplatePublish
from engine.prompts.owners import new_prompt_owner, require_writer
from engine.protocol import paging


def template_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["prompt_id"]),
        "version": row["version"],
        "name": row["name"],
        "description": row["description"],
        "tags": list(row["tags"]),
        "category": row["category"],
        "is_default": row["is_default"],
        "messages": row["messages"],
        "model": row["model"],
        "settings": row["settings"],
        "variables": row["variables"],
        "published_at": row["published_at"].isoformat(),
    }


async def publish(
    pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID, version: int, body: TemplatePublish
) -> dict[str, Any]:
    """Publish `version` as the prompt's public template (again: re-point it)."""
    await require_writer(pool, user_id, prompt_id)
    try:
        done = await template_rows.publish(
            pool, prompt_id, user_id, version, body.category, body.is_default
        )
    except asyncpg.UniqueViolationError:
        message = f"category {body.category!r} already has a default template"
        raise InvalidRequest(
            message, details={"errors": [{"field": "is_default", "message": message}]}
        ) from None
    if not done:
        raise NotFound("prompt or version not found")
    return await stats(pool, user_id, prompt_id)


async def stats(pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID) -> dict[str, Any]:
    """The prompt's template with its counts, for those who may write the prompt."""
    await require_writer(pool, user_id, prompt_id)
    row = await template_rows.author_view(pool, prompt_id, user_id)
    if row is None:
        raise NotFound("template not found")
    return {
        **template_view(row),
        "is_public": row["is_public"],
        "fork_count": row["fork_count"],
        "run_count": row["run_count"],
    }


async def unpublish(pool: asyncpg.Pool, user_id: UUID, prompt_id: UUID) -> None:
    await require_writer(pool, user_id, prompt_id)
    if not await template_rows.unpublish(pool, prompt_id, user_id):
        raise NotFound("template not found")


async def get(pool: asyncpg.Pool, template_id: UUID) -> dict[str, Any]:
    row = await template_rows.get_public(pool, template_id)
    if row is None:
        raise NotFound("template not found")
    return template_view(row)


async def gallery(
    pool: asyncpg.Pool, where: template_rows.GalleryFilter, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`{items, next_cursor}` of public templates, newest published first."""
    rows = await template_rows.gallery(
        pool, where, limit=limit + 1, after=paging.after_time_and_id(cursor)
    )
    return paging.page(
        rows, limit, template_view, paging.by_time_and_id("published_at", "prompt_id")
    )


async def fork(
    pool: asyncpg.Pool, user_id: UUID, template_id: UUID, body: ForkBody
) -> dict[str, Any]:
    """A new draft prompt holding a copy of the template's version."""
    owner = await new_prompt_owner(pool, user_id, body.org_id, body.project_id)
    new_id = uuid.uuid4()
    async with pool.acquire() as conn:
        if not await template_rows.fork(conn, template_id, new_id, user_id, owner, body.name):
            raise NotFound("template not found")
    return await library.get(pool, user_id, new_id)
