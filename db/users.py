"""Users and their API keys. Keys are stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from db.pool import TxConnection

KEY_PREFIX = "ps_"


@dataclass(frozen=True)
class User:
    id: UUID
    email: str | None
    tier: str
    key_id: UUID | None = None  # the API key this caller authenticated with, if any
    expires_at: float | None = None  # when the caller's token expires (JWT `exp`)


@dataclass(frozen=True)
class NewKey:
    id: UUID
    name: str
    prefix: str
    key: str


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def ensure_user(conn: asyncpg.Connection, email: str, tier: str | None = None) -> User:
    """The user with `email`, created if needed; `tier` updates it when given."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO users (id, email) VALUES ($1, $2)"
            " ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id, email",
            uuid.uuid4(),
            email,
        )
        assert row is not None
        tier_row = await conn.fetchrow(
            "INSERT INTO user_ai_settings (user_id, tier) VALUES ($1, COALESCE($2, 'free'))"
            " ON CONFLICT (user_id) DO UPDATE"
            " SET tier = COALESCE($2, user_ai_settings.tier), updated_at = now()"
            " RETURNING tier",
            row["id"],
            tier,
        )
    assert tier_row is not None
    return User(row["id"], row["email"], tier_row["tier"])


async def count_users(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM users"))


async def create_api_key(
    conn: asyncpg.Connection | asyncpg.Pool | TxConnection, user_id: UUID, name: str = ""
) -> NewKey:
    """A new key for the user. The full key exists only in the returned value."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = uuid.uuid4()
    prefix = key[:10]
    await conn.execute(
        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4, $5)",
        key_id,
        user_id,
        name,
        prefix,
        hash_key(key),
    )
    return NewKey(key_id, name, prefix, key)


async def mark_deleted(conn: asyncpg.Connection | asyncpg.Pool, email: str) -> bool:
    """Mark the live user `email` deleted (rows are kept for the records); False if none."""
    row = await conn.fetchrow(
        "UPDATE users SET deleted_at = now() WHERE email = $1 AND deleted_at IS NULL RETURNING id",
        email,
    )
    return row is not None


async def user_for_key(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> User | None:
    """The live user owning a live key, or None. The lookup is by hash, never by key text."""
    digest = hash_key(key)
    row = await conn.fetchrow(
        "UPDATE api_keys k SET last_used_at = now()"
        " FROM users u LEFT JOIN user_ai_settings s ON s.user_id = u.id"
        " WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.id = k.user_id"
        "   AND u.deleted_at IS NULL"
        " RETURNING u.id, u.email, COALESCE(s.tier, 'free') AS tier, k.id AS key_id,"
        " k.key_hash",
        digest,
    )
    # The index found the row by hash; the hashes are also compared in constant time.
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
        return None
    return User(row["id"], row["email"], row["tier"], row["key_id"])


_SUBJECT = """
WITH ins AS (
    INSERT INTO users (id, email)
    SELECT $1, CASE WHEN EXISTS (SELECT 1 FROM users WHERE email = $2) THEN NULL ELSE $2 END
    ON CONFLICT DO NOTHING
    RETURNING id, email, deleted_at
), u AS (
    SELECT id, email, deleted_at FROM ins
    UNION ALL
    SELECT id, email, deleted_at FROM users WHERE id = $1
)
SELECT u.id, u.email, u.deleted_at, COALESCE(s.tier, 'free') AS tier
FROM u LEFT JOIN user_ai_settings s ON s.user_id = u.id
LIMIT 1
"""


async def user_for_subject(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: UUID, email: str | None
) -> User | None:
    """The user whose id is a verified token's `sub`, created on first sight; None when
    that user was deleted (a deleted user is never brought back by a token)."""
    for _ in range(3):
        # A concurrent first sight of the same user commits its row while this statement
        # waits on the conflict; its snapshot cannot see that row, the next statement can.
        row = await conn.fetchrow(_SUBJECT, user_id, email)
        if row is not None:
            return None if row["deleted_at"] else User(row["id"], row["email"], row["tier"])
    return None
