"""The caller's account: profile with tier, limits and today's usage; API keys; usage totals.

Revoking a key announces it on a Redis channel that every gateway node listens to, so
sockets authenticated with it are closed everywhere within moments (server/realtime/sessions.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from db import api_keys as key_rows
from db import usage as usage_rows
from db.users import User
from engine.accounts.quotas import Quotas, limits_for
from engine.errors import InvalidRequest, NotFound
from engine.providers.pricing import format_money
from engine.redis_keys import RedisKeys
from engine.settings import Settings

MAX_USAGE_DAYS = 366
MAX_PAGE = 200


async def announce_revoked(
    redis: aioredis.Redis,
    keys: RedisKeys,
    *,
    user_id: UUID | None = None,
    key_id: UUID | None = None,
) -> None:
    """Tell every node to drop the sockets of this key or user."""
    message = {
        "user_id": str(user_id) if user_id else None,
        "key_id": str(key_id) if key_id else None,
    }
    await redis.publish(keys.revoked_channel(), json.dumps(message))


@dataclass
class Accounts:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    keys: RedisKeys
    quotas: Quotas

    async def me(self, user: User) -> dict[str, Any]:
        """`GET /v1/me`."""
        return {
            "id": str(user.id),
            "email": user.email,
            "tier": user.tier,
            "limits": {
                **limits_for(self.settings, user.tier).to_dict(),
                "concurrent_tasks": self.settings.max_concurrent_tasks,
            },
            "usage_today": await self.quotas.usage(user.id),
        }

    async def create_key(self, user: User, name: str) -> dict[str, Any]:
        cap = self.settings.max_keys_per_user
        new = await key_rows.create_key_capped(self.pool, user.id, name, cap)
        if new is None:
            message = f"at most {cap} live API keys per user; revoke one first"
            raise InvalidRequest(
                message,
                details={
                    "limit": "keys",
                    "max": cap,
                    "errors": [{"field": "(body)", "message": message}],
                },
            )
        return {"id": str(new.id), "name": new.name, "prefix": new.prefix, "key": new.key}

    async def list_keys(self, user: User, limit: int, cursor: int) -> dict[str, Any]:
        rows = await key_rows.list_keys(self.pool, user.id, limit=limit + 1, offset=cursor)
        items = [key_view(r) for r in rows[:limit]]
        return {"items": items, "next_cursor": str(cursor + limit) if len(rows) > limit else None}

    async def revoke_key(self, user: User, key_id: UUID) -> None:
        if not await key_rows.revoke_key(self.pool, user.id, key_id):
            raise NotFound("key not found")
        await announce_revoked(self.redis, self.keys, key_id=key_id)

    async def usage(self, user: User, first: date, last: date) -> list[dict[str, Any]]:
        """`GET /v1/usage`: the user's totals by day, provider and model."""
        if last < first or last - first > timedelta(days=MAX_USAGE_DAYS):
            raise InvalidRequest(
                f"`from` must not be after `to`, and at most {MAX_USAGE_DAYS} days apart",
                details={"errors": [{"field": "to", "message": "bad date range"}]},
            )
        rows = await usage_rows.usage_by_day(self.pool, user.id, first, last)
        return [
            {
                "day": r["day"].isoformat(),
                "provider": r["provider"],
                "model": r["model"],
                "tasks": r["tasks"],
                "input_tokens": r["input_tokens"],
                "output_tokens": r["output_tokens"],
                "cost_usd": None if r["cost_usd"] is None else format_money(r["cost_usd"]),
                "unpriced_tasks": r["unpriced_tasks"],
            }
            for r in rows
        ]


def key_view(row: asyncpg.Record) -> dict[str, Any]:
    """A key without key material: its prefix and when it was last used."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "prefix": row["prefix"],
        "created_at": row["created_at"].isoformat(),
        "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
        "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
    }
