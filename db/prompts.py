"""Stored prompts, their versions, and the builtins."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from db.pool import TxConnection


async def get_prompt_version(
    conn: asyncpg.Connection | asyncpg.Pool, prompt_id: UUID, user_id: UUID, version: int | None
) -> asyncpg.Record | None:
    """The pinned version, or the published one when none is pinned; owner-scoped.

    An archived prompt runs only pinned."""
    return await conn.fetchrow(
        "SELECT p.id, p.name, p.status, p.org_id, p.project_id, v.version, v.messages,"
        " v.model, v.settings, v.variables,"
        f" {_VALIDATIONS}"
        " FROM prompts p JOIN prompt_versions v ON v.prompt_id = p.id"
        f" WHERE p.id = $1 AND {CAN_READ.format('$2')}"
        "   AND v.version = COALESCE($3::int, p.published_version)"
        "   AND ($3::int IS NOT NULL OR p.status <> 'archived')",
        prompt_id,
        user_id,
        version,
    )


async def get_builtin(
    conn: asyncpg.Connection | asyncpg.Pool, name_or_id: str
) -> asyncpg.Record | None:
    """A builtin by name or by id."""
    return await conn.fetchrow(
        "SELECT id, name, description, messages, model, settings, variables, validations,"
        " updated_at FROM prompt_builtins"
        " WHERE name = $1 OR id::text = $1",
        name_or_id,
    )


async def upsert_builtin(
    conn: asyncpg.Connection,
    name: str,
    description: str,
    messages: list[dict[str, str]],
    model: str | None,
    settings: dict[str, object],
    variables: list[dict[str, object]],
    builtin_id: UUID,
) -> None:
    await conn.execute(
        "INSERT INTO prompt_builtins (id, name, description, messages, model, settings, variables)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET"
        " description = EXCLUDED.description, messages = EXCLUDED.messages,"
        " model = EXCLUDED.model, settings = EXCLUDED.settings,"
        " variables = EXCLUDED.variables, updated_at = now()",
        builtin_id,
        name,
        description,
        messages,
        model,
        settings,
        variables,
    )


PROMPT_COLUMNS = (
    "p.id, p.name, p.description, p.tags, p.status, p.latest_version, p.published_version,"
    " p.org_id, p.project_id, p.forked_from_prompt, p.forked_from_version,"
    " p.created_at, p.updated_at"
)
# The caller's role on a prompt (sql/012_team_prompts.sql): NULL means no access at all.
_ROLE = "prompt_role(p.user_id, p.org_id, p.project_id, {})"
CAN_READ = _ROLE + " IS NOT NULL"
CAN_WRITE = _ROLE + " = 'admin'"
VERSION_COLUMNS = (
    "v.version, v.messages, v.model, v.settings, v.variables, v.change_log,"
    " v.created_at AS version_created_at"
)
_VALIDATIONS = (
    "(SELECT COALESCE(jsonb_agg(pv.spec ORDER BY pv.ord), '[]'::jsonb) FROM prompt_validations pv"
    " WHERE pv.prompt_id = v.prompt_id AND pv.version = v.version) AS validations"
)


@dataclass(frozen=True)
class VersionContent:
    """The immutable part of a prompt: one `prompt_versions` row and its validations."""

    messages: list[dict[str, str]]
    model: str | None
    settings: dict[str, Any]
    variables: list[dict[str, Any]]
    validations: list[dict[str, Any]]
    change_log: str = ""


async def _insert_version(
    conn: TxConnection, prompt_id: UUID, version: int, content: VersionContent
) -> None:
    await conn.execute(
        "INSERT INTO prompt_versions (prompt_id, version, messages, model, settings, variables,"
        " change_log) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        prompt_id,
        version,
        content.messages,
        content.model,
        content.settings,
        content.variables,
        content.change_log,
    )
    await conn.executemany(
        "INSERT INTO prompt_validations (id, prompt_id, version, kind, spec, ord)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [
            (uuid.uuid4(), prompt_id, version, spec["type"], spec, i)
            for i, spec in enumerate(content.validations)
        ],
    )


async def create_prompt(
    conn: TxConnection,
    prompt_id: UUID,
    user_id: UUID,
    name: str,
    description: str,
    tags: list[str],
    content: VersionContent,
    owner: tuple[UUID | None, UUID | None] = (None, None),
) -> None:
    """A new draft prompt with its version 1, in one transaction; `owner` is (org_id,
    project_id), both None for the author's own prompt."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO prompts (id, user_id, name, description, tags, status, latest_version,"
            " org_id, project_id) VALUES ($1, $2, $3, $4, $5, 'draft', 1, $6, $7)",
            prompt_id,
            user_id,
            name,
            description,
            tags,
            owner[0],
            owner[1],
        )
        await _insert_version(conn, prompt_id, 1, content)


async def get_prompt(
    conn: asyncpg.Connection | asyncpg.Pool,
    prompt_id: UUID,
    user_id: UUID,
    version: int | None = None,
) -> asyncpg.Record | None:
    """A prompt the caller may read, with one version's content (the latest unless
    `version`) and the caller's `role` on it."""
    return await conn.fetchrow(
        f"SELECT {PROMPT_COLUMNS}, {VERSION_COLUMNS}, {_VALIDATIONS}, {_ROLE.format('$2')} AS role"
        " FROM prompts p JOIN prompt_versions v ON v.prompt_id = p.id"
        f" WHERE p.id = $1 AND {CAN_READ.format('$2')}"
        "   AND v.version = COALESCE($3::int, p.latest_version)",
        prompt_id,
        user_id,
        version,
    )


async def add_version(
    conn: TxConnection,
    prompt_id: UUID,
    user_id: UUID,
    header: dict[str, Any],
    content: VersionContent,
) -> int | None:
    """Write the next immutable version and update name/description/tags; None if not found
    or the caller is not an admin of the prompt.

    The prompt row is locked, so two concurrent updates get consecutive versions.
    """
    async with conn.transaction():
        latest = await conn.fetchval(
            "SELECT latest_version FROM prompts p"
            f" WHERE p.id = $1 AND {CAN_WRITE.format('$2')} FOR UPDATE",
            prompt_id,
            user_id,
        )
        if latest is None:
            return None
        version = int(latest) + 1
        await _insert_version(conn, prompt_id, version, content)
        await conn.execute(
            "UPDATE prompts SET latest_version = $2, name = $3, description = $4, tags = $5,"
            " updated_at = now() WHERE id = $1",
            prompt_id,
            version,
            header["name"],
            header["description"],
            header["tags"],
        )
        await conn.execute("DELETE FROM generated_prompts WHERE prompt_id = $1", prompt_id)
    return version


@dataclass(frozen=True)
class PromptFilter:
    """What a prompt list keeps: `owner` is `me` (the caller's own prompts), `org`, `project`
    (with `owner_id`) or None (every prompt the caller may read)."""

    status: str | None = None
    tag: str | None = None
    text: str | None = None
    owner: str | None = None
    owner_id: UUID | None = None


async def list_prompts(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: UUID,
    where: PromptFilter,
    *,
    limit: int,
    after: tuple[Any, UUID] | None,
) -> list[asyncpg.Record]:
    """Prompts the caller may read, newest first, keyset-paged by (created_at, id)."""
    return await conn.fetch(
        f"SELECT {PROMPT_COLUMNS}, {VERSION_COLUMNS}, {_VALIDATIONS}, {_ROLE.format('$1')} AS role"
        " FROM prompts p JOIN prompt_versions v"
        "   ON v.prompt_id = p.id AND v.version = p.latest_version"
        f" WHERE {CAN_READ.format('$1')} AND ($2::text IS NULL OR p.status = $2)"
        "   AND ($3::text IS NULL OR $3 = ANY(p.tags))"
        "   AND ($4::text IS NULL OR strpos(lower(p.name || ' ' || p.description), lower($4)) > 0)"
        "   AND ($5::timestamptz IS NULL OR (p.created_at, p.id) < ($5, $6::uuid))"
        "   AND ($8::text IS NULL"
        "        OR ($8 = 'me' AND p.user_id = $1 AND p.org_id IS NULL AND p.project_id IS NULL)"
        "        OR ($8 = 'org' AND p.org_id = $9) OR ($8 = 'project' AND p.project_id = $9))"
        " ORDER BY p.created_at DESC, p.id DESC LIMIT $7",
        user_id,
        where.status,
        where.tag,
        where.text,
        after[0] if after else None,
        after[1] if after else None,
        limit,
        where.owner,
        where.owner_id,
    )


async def list_versions(
    conn: asyncpg.Connection | asyncpg.Pool,
    prompt_id: UUID,
    user_id: UUID,
    *,
    after: int,
    limit: int,
) -> list[asyncpg.Record]:
    """Versions above `after`, oldest first."""
    return await conn.fetch(
        "SELECT v.version, v.change_log, v.model, v.created_at"
        " FROM prompts p JOIN prompt_versions v ON v.prompt_id = p.id"
        f" WHERE p.id = $1 AND {CAN_READ.format('$2')} AND v.version > $3"
        " ORDER BY v.version LIMIT $4",
        prompt_id,
        user_id,
        after,
        limit,
    )


async def publish(
    conn: asyncpg.Connection | asyncpg.Pool, prompt_id: UUID, user_id: UUID, version: int
) -> bool:
    """Make `version` the one an unpinned execute runs; False if prompt or version is absent."""
    row = await conn.fetchval(
        "UPDATE prompts p SET published_version = $3, status = 'published', updated_at = now()"
        f" WHERE p.id = $1 AND {CAN_WRITE.format('$2')} AND EXISTS"
        " (SELECT 1 FROM prompt_versions v WHERE v.prompt_id = p.id AND v.version = $3)"
        " RETURNING p.id",
        prompt_id,
        user_id,
        version,
    )
    return row is not None


async def archive(conn: asyncpg.Connection | asyncpg.Pool, prompt_id: UUID, user_id: UUID) -> bool:
    row = await conn.fetchval(
        "UPDATE prompts p SET status = 'archived', updated_at = now()"
        f" WHERE p.id = $1 AND {CAN_WRITE.format('$2')} RETURNING p.id",
        prompt_id,
        user_id,
    )
    return row is not None


async def delete_prompt(conn: TxConnection, prompt_id: UUID, user_id: UUID) -> bool:
    async with conn.transaction():
        row = await conn.fetchval(
            f"DELETE FROM prompts p WHERE p.id = $1 AND {CAN_WRITE.format('$2')} RETURNING p.id",
            prompt_id,
            user_id,
        )
        if row is not None:
            await conn.execute("DELETE FROM generated_prompts WHERE prompt_id = $1", prompt_id)
    return row is not None


async def cache_render(
    conn: asyncpg.Connection | asyncpg.Pool,
    cache_key: bytes,
    prompt_id: UUID | None,
    version: int | None,
    rendered: list[dict[str, str]],
) -> list[dict[str, str]]:
    """Store a render under its key, or count one more use of the stored one; returns the
    render that is stored (seed 001 `generated_prompts`)."""
    stored: list[dict[str, str]] = await conn.fetchval(
        "INSERT INTO generated_prompts (cache_key, prompt_id, version, rendered)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (cache_key) DO UPDATE SET"
        " usage_count = generated_prompts.usage_count + 1, last_used_at = now()"
        " RETURNING rendered",
        cache_key,
        prompt_id,
        version,
        rendered,
    )
    return stored


async def owns_prompt(
    conn: asyncpg.Connection | asyncpg.Pool, prompt_id: UUID, user_id: UUID
) -> bool:
    """Whether the prompt exists and the caller may read it (its author, or a member of the
    team that owns it)."""
    found = await conn.fetchval(
        f"SELECT 1 FROM prompts p WHERE p.id = $1 AND {CAN_READ.format('$2')}", prompt_id, user_id
    )
    return found is not None


async def prompt_role(
    conn: asyncpg.Connection | asyncpg.Pool, prompt_id: UUID, user_id: UUID
) -> str | None:
    """The caller's role on a prompt: `admin`, `member`, or None (no prompt, or no access)."""
    role: str | None = await conn.fetchval(
        f"SELECT {_ROLE.format('$2')} FROM prompts p WHERE p.id = $1", prompt_id, user_id
    )
    return role
