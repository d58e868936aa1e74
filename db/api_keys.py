"""API keys of a user: list (never key material), revoke, and which keys are still live."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.users import NewKey, create_api_key

Conn = asyncpg.Connection | asyncpg.Pool


async def list_keys(conn: Conn, user_id: UUID, *, limit: int, offset: int) -> list[asyncpg.Record]:
    """The user's keys, newest first: id, name, prefix, created, last used, revoked."""
    return await conn.fetch(
        "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys"
        " WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
        user_id,
        limit,
        offset,
    )


async def revoke_key(conn: Conn, user_id: UUID, key_id: UUID) -> bool:
    """Revoke the user's live key; False when it is not theirs or already revoked."""
    row = await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2"
        " AND revoked_at IS NULL RETURNING id",
        key_id,
        user_id,
    )
    return row is not None


async def revoke_by_prefix(conn: Conn, email: str, prefix: str) -> list[asyncpg.Record]:
    """Revoke the live keys of the user `email` whose prefix starts with `prefix` (CLI)."""
    return await conn.fetch(
        "UPDATE api_keys k SET revoked_at = now() FROM users u"
        " WHERE u.id = k.user_id AND u.email = $1 AND k.revoked_at IS NULL"
        " AND starts_with(k.prefix, $2) RETURNING k.id, k.user_id, k.prefix",
        email,
        prefix,
    )


async def list_keys_of(conn: Conn, email: str) -> list[asyncpg.Record]:
    """Every key of the user `email`, for the CLI."""
    return await conn.fetch(
        "SELECT k.id, k.name, k.prefix, k.created_at, k.last_used_at, k.revoked_at"
        " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE u.email = $1"
        " ORDER BY k.created_at DESC",
        email,
    )


async def live_callers(
    conn: Conn, user_ids: list[UUID], key_ids: list[UUID]
) -> tuple[set[UUID], set[UUID]]:
    """Of these users and keys, those still live (user not deleted, key not revoked)."""
    users = await conn.fetch(
        "SELECT id FROM users WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL", user_ids
    )
    keys = await conn.fetch(
        "SELECT k.id FROM api_keys k JOIN users u ON u.id = k.user_id"
        " WHERE k.id = ANY($1::uuid[]) AND k.revoked_at IS NULL AND u.deleted_at IS NULL",
        key_ids,
    )
    return {r["id"] for r in users}, {r["id"] for r in keys}


async def create_key_capped(
    pool: asyncpg.Pool, user_id: UUID, name: str, cap: int
) -> NewKey | None:
    """A new key unless the user already has `cap` live ones (None then).

    The count and the insert run under a per-user advisory lock, so a burst of creates on
    any number of nodes cannot pass the cap together.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 1))", str(user_id)
        )
        live = await conn.fetchval(
            "SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL", user_id
        )
        if live >= cap:
            return None
        return await create_api_key(conn, user_id, name)
