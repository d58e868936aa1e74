"""Users' provider keys in `user_ai_settings.provider_keys`: only ciphertext and last four
characters are stored, as `{provider: {ciphertext, last4, updated_at}}`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class StoredKey:
    provider: str
    last4: str
    updated_at: datetime | None


async def put_key(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: UUID,
    provider: str,
    ciphertext: str,
    last4: str,
) -> None:
    """Store (or replace) the user's key for `provider`."""
    await conn.execute(
        "INSERT INTO user_ai_settings (user_id, provider_keys) VALUES ($1,"
        " jsonb_build_object($2::text, jsonb_build_object('ciphertext', $3::text,"
        " 'last4', $4::text, 'updated_at', now())))"
        " ON CONFLICT (user_id) DO UPDATE SET provider_keys ="
        " user_ai_settings.provider_keys || EXCLUDED.provider_keys, updated_at = now()",
        user_id,
        provider,
        ciphertext,
        last4,
    )


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool, user_id: UUID) -> list[StoredKey]:
    """The user's stored keys without their ciphertext, by provider name."""
    raw = await conn.fetchval(
        "SELECT provider_keys FROM user_ai_settings WHERE user_id = $1", user_id
    )
    entries: dict[str, Any] = raw or {}
    return [
        StoredKey(name, str(entry.get("last4", "")), _time(entry.get("updated_at")))
        for name, entry in sorted(entries.items())
    ]


async def get_ciphertext(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: UUID, provider: str
) -> str | None:
    value = await conn.fetchval(
        "SELECT provider_keys -> $2::text ->> 'ciphertext' FROM user_ai_settings"
        " WHERE user_id = $1",
        user_id,
        provider,
    )
    return None if value is None else str(value)


async def delete_key(conn: asyncpg.Connection | asyncpg.Pool, user_id: UUID, provider: str) -> bool:
    """Remove the user's key for `provider`; False when there was none."""
    result = await conn.fetchval(
        "UPDATE user_ai_settings SET provider_keys = provider_keys - $2::text,"
        " updated_at = now() WHERE user_id = $1 AND provider_keys ? $2::text RETURNING 1",
        user_id,
        provider,
    )
    return result is not None


async def all_ciphertexts(conn: asyncpg.Connection) -> list[tuple[UUID, str, str]]:
    """(user_id, provider, ciphertext) of every stored key, for a key rotation."""
    rows = await conn.fetch(
        "SELECT s.user_id, k.key AS provider, k.value ->> 'ciphertext' AS ciphertext"
        " FROM user_ai_settings s, jsonb_each(s.provider_keys) k"
    )
    return [(r["user_id"], r["provider"], r["ciphertext"]) for r in rows]


async def replace_ciphertext(
    conn: asyncpg.Connection, user_id: UUID, provider: str, ciphertext: str
) -> None:
    """Swap one stored ciphertext for its re-encryption (same key, newer server key)."""
    await conn.execute(
        "UPDATE user_ai_settings SET provider_keys = jsonb_set(provider_keys,"
        " ARRAY[$2::text, 'ciphertext'], to_jsonb($3::text)) WHERE user_id = $1"
        " AND provider_keys ? $2::text",
        user_id,
        provider,
        ciphertext,
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
