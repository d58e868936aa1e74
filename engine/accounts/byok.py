"""Bring your own key: users store provider keys (encrypted); `byok` tasks call with them.

A stored key is decrypted only for the call that needs it and is never returned (only its
last four characters), logged, put in an event, in Redis or in any row but its ciphertext.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from db import provider_keys as key_rows
from db.users import User
from engine.accounts.secrets import KeyRing, KeyUnreadable
from engine.errors import ClientError, InvalidRequest, NotFound, ProviderRejected
from engine.providers.base import Provider

log = logging.getLogger(__name__)

BYOK_TIER = "byok"
MAX_KEY_LENGTH = 1024


class KeysDisabled(ClientError):
    code = "invalid_request"
    http_status = 409


@dataclass(frozen=True)
class UserKeys:
    """The key source of one `byok` user's tasks (see engine.tasks.retries.KeySource)."""

    store: ProviderKeys
    user_id: UUID

    async def key_for(self, provider: Provider) -> str | None:
        if not provider.needs_key:
            return None
        return await self.store.decrypt(self.user_id, provider.name)


class ProviderKeys:
    """Store, list, delete and (for calls) decrypt users' provider keys."""

    def __init__(
        self, conn: asyncpg.Pool | asyncpg.Connection, ring: KeyRing | None, providers: list[str]
    ) -> None:
        self._conn = conn
        self._ring = ring
        self._providers = providers  # names that take a key

    def source_for(self, user: User) -> UserKeys | None:
        """Where `user`'s tasks get provider keys: their own on the byok tier, else the server."""
        return UserKeys(self, user.id) if user.tier == BYOK_TIER else None

    def for_user_id(self, user_id: UUID) -> UserKeys:
        """The key source of a byok user known only by id (a worker running a job)."""
        return UserKeys(self, user_id)

    def _require_ring(self) -> KeyRing:
        if self._ring is None:
            raise KeysDisabled(
                "this server stores no provider keys (PROVIDER_KEYS_SECRET is not set)"
            )
        return self._ring

    def _check_provider(self, provider: str) -> None:
        if provider not in self._providers:
            raise NotFound(f"unknown provider; one of {', '.join(self._providers)}")

    async def store(self, user_id: UUID, provider: str, key: str) -> dict[str, Any]:
        """Encrypt and store `key`; returns `{provider, last4}`."""
        self._check_provider(provider)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or any(c.isspace() for c in key):
            raise InvalidRequest(
                "key must be one non-empty word of at most 1024 characters",
                details={"errors": [{"field": "key", "message": "invalid"}]},
            )
        ring = self._require_ring()
        last4 = key[-4:]
        await key_rows.put_key(
            self._conn, user_id, provider, ring.seal(user_id, provider, key), last4
        )
        return {"provider": provider, "last4": last4}

    async def list(self, user_id: UUID) -> list[dict[str, Any]]:
        stored = await key_rows.list_keys(self._conn, user_id)
        return [
            {
                "provider": k.provider,
                "last4": k.last4,
                "updated_at": k.updated_at.isoformat() if k.updated_at else None,
            }
            for k in stored
        ]

    async def delete(self, user_id: UUID, provider: str) -> None:
        self._check_provider(provider)
        if not await key_rows.delete_key(self._conn, user_id, provider):
            raise NotFound(f"no {provider} key stored")

    async def decrypt(self, user_id: UUID, provider: str) -> str:
        """The user's key for one call; fails closed with provider_error."""
        if self._ring is None:
            raise ProviderRejected("this server cannot use stored provider keys")
        token = await key_rows.get_ciphertext(self._conn, user_id, provider)
        if token is None:
            raise ProviderRejected(f"no {provider} key is stored for this account")
        try:
            return self._ring.open(user_id, provider, token)
        except KeyUnreadable:
            log.warning("stored %s key of user %s cannot be decrypted", provider, user_id)
            raise ProviderRejected(
                f"the stored {provider} key cannot be read; store it again"
            ) from None

    async def rotate_all(self, conn: asyncpg.Connection) -> tuple[int, int]:
        """Re-encrypt every stored key under the newest server key: (rotated, unreadable)."""
        ring = self._require_ring()
        rotated = unreadable = 0
        for user_id, provider, token in await key_rows.all_ciphertexts(conn):
            try:
                fresh = ring.rotate(token)
            except KeyUnreadable:
                unreadable += 1
                continue
            await key_rows.replace_ciphertext(conn, user_id, provider, fresh)
            rotated += 1
        return rotated, unreadable
