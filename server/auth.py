"""Who is calling: API keys (stored as SHA-256 hashes) from the auth payload or a header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from db.users import User, user_for_key
from engine.errors import Unauthorized


def token_from(auth: Any, headers: Mapping[str, str]) -> str | None:
    """The bearer token of a Socket.IO `auth` payload or an `Authorization` header."""
    if isinstance(auth, dict):
        token = auth.get("token")
        if isinstance(token, str) and token:
            return token
    header = headers.get("Authorization") or headers.get("HTTP_AUTHORIZATION") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def authenticate(pool: asyncpg.Pool, token: str | None) -> User:
    """The user of `token`, or Unauthorized (missing, unknown or revoked)."""
    if not token or len(token) > 4096:
        raise Unauthorized("missing or invalid token")
    user = await user_for_key(pool, token)
    if user is None:
        raise Unauthorized("missing or invalid token")
    return user
