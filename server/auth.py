"""Who is calling: an API key (stored as a SHA-256 hash) or a JWT signed HS256 with the
server's secret, from the Socket.IO auth payload or the `Authorization` header."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg
import jwt

from db.users import KEY_PREFIX, User, user_for_key, user_for_subject
from engine.errors import Unauthorized
from engine.settings import Settings

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 4096
# Pinned: never taken from the token's own header, so `alg: none` and RS/HS confusion fail.
JWT_ALGORITHMS = ["HS256"]


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


def looks_like_jwt(token: str) -> bool:
    return not token.startswith(KEY_PREFIX) and token.count(".") == 2


def verify_jwt(token: str, settings: Settings) -> dict[str, Any]:
    """The claims of a valid token, or Unauthorized. `exp` and `sub` are required; `aud`
    and `iss` are checked when configured."""
    if settings.jwt_secret is None:
        raise Unauthorized("missing or invalid token")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=JWT_ALGORITHMS,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options={"require": ["exp", "sub"], "verify_aud": settings.jwt_audience is not None},
        )
    except jwt.PyJWTError as exc:
        # The class name says why (ExpiredSignatureError, InvalidAudienceError, ...); the
        # token itself is never logged.
        log.info("JWT refused: %s", type(exc).__name__)
        raise Unauthorized("missing or invalid token") from None
    return claims


async def authenticate(
    pool: asyncpg.Pool, token: str | None, settings: Settings | None = None
) -> User:
    """The user of `token`, or Unauthorized (missing, unknown, revoked, expired, deleted)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized("missing or invalid token")
    if settings is not None and looks_like_jwt(token):
        claims = verify_jwt(token, settings)
        try:
            user_id = UUID(str(claims["sub"]))
        except ValueError:
            raise Unauthorized("missing or invalid token") from None
        email = claims.get("email")
        user = await user_for_subject(pool, user_id, email if isinstance(email, str) else None)
        if user is not None:
            user = dataclasses.replace(user, expires_at=float(claims["exp"]))
    else:
        user = await user_for_key(pool, token)
    if user is None:
        raise Unauthorized("missing or invalid token")
    return user
