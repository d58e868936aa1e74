"""The asyncpg pool, with JSON codecs so jsonb columns read and write Python values."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=json.dumps, decoder=json.loads,
            format="text",
        )


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """Open a pool to `dsn`."""
    pool: Any = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection,
        command_timeout=60,
    )
    return pool  # type: ignore[no-any-return]


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with the same codecs, for the CLI."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn
