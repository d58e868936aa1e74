"""Public prompt templates (sql/013_templates.sql): publish, unpublish, the gallery, forks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from db.pool import TxConnection
from db.prompts import CAN_WRITE

TEMPLATE_COLUMNS = (
    "t.prompt_id, t.version, t.category, t.is_default, t.published_at, p.name, p.description,"
    " p.tags, v.messages, v.model, v.settings, v.variables"
)
_FROM = (
    " FROM prompt_templates t JOIN prompts p ON p.id = t.prompt_id"
    " JOIN prompt_versions v ON v.prompt_id = t.prompt_id AND v.version = t.version"
)


async def publish(
    conn: asyncpg.Connection | asyncpg.Pool,
    prompt_id: UUID,
    user_id: UUID,
    version: int,
    category: str,
    is_default: bool,
) -> bool:
    """Publish (or re-point) the prompt's template at `version`; False when the caller may
    not write the prompt or the version is absent. A second default of a category raises
    `asyncpg.UniqueViolationError` (one default per category, enforced by an index)."""
    row = await conn.fetchval(
        "INSERT INTO prompt_templates (prompt_id, version, category, is_default, published_by)"
        " SELECT p.id, $3, $4, $5, $2 FROM prompts p"
        f" WHERE p.id = $1 AND {CAN_WRITE.format('$2')}"
        "   AND EXISTS (SELECT 1 FROM prompt_versions v WHERE v.prompt_id = p.id"
        "               AND v.version = $3)"
        " ON CONFLICT (prompt_id) DO UPDATE SET version = EXCLUDED.version,"
        " category = EXCLUDED.category, is_default = EXCLUDED.is_default, is_public = true,"
        " published_by = EXCLUDED.published_by, published_at = now()"
        " RETURNING prompt_id",
        prompt_id,
        user_id,
        version,
        category,
        is_default,
    )
    return row is not None


async def unpublish(
    conn: asyncpg.Connection | asyncpg.Pool, prompt_id: UUID, user_id: UUID
) -> bool:
    """Take the template out of the gallery (its counts stay); False when there is none
    the caller may write."""
    row = await conn.fetchval(
        "UPDATE prompt_templates t SET is_public = false, is_default = false"
        f" FROM prompts p WHERE p.id = t.prompt_id AND p.id = $1 AND {CAN_WRITE.format('$2')}"
        "   AND t.is_public RETURNING t.prompt_id",
        prompt_id,
        user_id,
    )
    return row is not None


@dataclass(frozen=True)
class GalleryFilter:
    text: str | None = None
    tag: str | None = None
    category: str | None = None


async def gallery(
    conn: asyncpg.Connection | asyncpg.Pool,
    where: GalleryFilter,
    *,
    limit: int,
    after: tuple[Any, UUID] | None,
) -> list[asyncpg.Record]:
    """Public templates, newest published first, keyset-paged by (published_at, prompt_id)."""
    return await conn.fetch(
        f"SELECT {TEMPLATE_COLUMNS}{_FROM}"
        " WHERE t.is_public AND ($1::text IS NULL OR $1 = ANY(p.tags))"
        "   AND ($2::text IS NULL OR t.category = $2)"
        "   AND ($3::text IS NULL OR strpos(lower(p.name || ' ' || p.description), lower($3)) > 0)"
        "   AND ($4::timestamptz IS NULL OR (t.published_at, t.prompt_id) < ($4, $5::uuid))"
        " ORDER BY t.published_at DESC, t.prompt_id DESC LIMIT $6",
        where.tag,
        where.category,
        where.text,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def get_public(
    conn: asyncpg.Connection | asyncpg.Pool, template_id: UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {TEMPLATE_COLUMNS}{_FROM} WHERE t.prompt_id = $1 AND t.is_public", template_id
    )


async def author_view(
    conn: asyncpg.Connection | asyncpg.Pool, prompt_id: UUID, user_id: UUID
) -> asyncpg.Record | None:
    """The template of a prompt the caller may write, with `is_public`, `fork_count` and
    `run_count` (executions of its forks)."""
    return await conn.fetchrow(
        f"SELECT {TEMPLATE_COLUMNS}, t.is_public, t.fork_count,"
        " (SELECT count(*) FROM ai_tasks a JOIN prompts f ON f.id = a.prompt_id"
        "  WHERE f.forked_from_prompt = t.prompt_id) AS run_count"
        f"{_FROM} WHERE t.prompt_id = $1 AND {CAN_WRITE.format('$2')}",
        prompt_id,
        user_id,
    )


async def fork(
    conn: TxConnection,
    template_id: UUID,
    new_id: UUID,
    user_id: UUID,
    owner: tuple[UUID | None, UUID | None],
    name: str | None,
) -> bool:
    """Copy a public template's version into a new draft prompt (its version 1) with its
    provenance, and count the fork, in one transaction; False if no such public template."""
    async with conn.transaction():
        version = await conn.fetchval(
            "UPDATE prompt_templates SET fork_count = fork_count + 1"
            " WHERE prompt_id = $1 AND is_public RETURNING version",
            template_id,
        )
        if version is None:
            return False
        await conn.execute(
            "INSERT INTO prompts (id, user_id, name, description, tags, status, latest_version,"
            " org_id, project_id, forked_from_prompt, forked_from_version)"
            " SELECT $2, $3, COALESCE($4, p.name), p.description, p.tags, 'draft', 1, $5, $6,"
            " p.id, $7 FROM prompts p WHERE p.id = $1",
            template_id,
            new_id,
            user_id,
            name,
            owner[0],
            owner[1],
            version,
        )
        await conn.execute(
            "INSERT INTO prompt_versions (prompt_id, version, messages, model, settings,"
            " variables, change_log) SELECT $2, 1, messages, model, settings, variables,"
            " 'forked' FROM prompt_versions WHERE prompt_id = $1 AND version = $3",
            template_id,
            new_id,
            version,
        )
        await conn.execute(
            "INSERT INTO prompt_validations (id, prompt_id, version, kind, spec, ord)"
            " SELECT gen_random_uuid(), $2, 1, kind, spec, ord FROM prompt_validations"
            " WHERE prompt_id = $1 AND version = $3",
            template_id,
            new_id,
            version,
        )
    return True
