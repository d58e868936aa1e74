"""What a user can pick from to run: the builtins (for the playground's fallback route)."""

from __future__ import annotations

from typing import Any

import asyncpg

from db import builtins


async def builtin_summaries(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """`GET /v1/builtins` items (docs/protocol.md): `{id, name, description, variables}`."""
    rows = await builtins.list_builtins(pool)
    return [
        {
            "id": str(r["id"]),
            "name": r["name"],
            "description": r["description"],
            "variables": r["variables"],
        }
        for r in rows
    ]
