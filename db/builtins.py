"""Listing the builtin prompts (read-only; they are defined in sql/002_builtins.sql)."""

from __future__ import annotations

import asyncpg


async def list_builtins(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    """Every builtin, by name."""
    return list(
        await conn.fetch(
            "SELECT id, name, description, variables FROM prompt_builtins ORDER BY name"
        )
    )
