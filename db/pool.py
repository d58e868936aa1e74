"""The asyncpg pool, with JSON codecs so jsonb columns read and write Python values."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=json.dumps, decoder=json.loads,
            format="text",
        )


async def _init_counted(on_query: Callable[[Any], None], conn: asyncpg.Connection) -> None:
    await _init_connection(conn)
    conn.add_query_logger(on_query)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without the reset statement (a round trip per use): asyncpg still rolls back
    an open transaction, and nothing in db/ leaves session state behind (no LISTEN, no
    session-level SET, advisory locks released in `finally`)."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20,
                      on_query: Callable[[Any], None] | None = None) -> asyncpg.Pool:
    """Open a pool to `dsn`; `on_query`, when given, is called after every statement."""
    init = _init_connection if on_query is None else functools.partial(_init_counted, on_query)
    pool: Any = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init, reset=_keep_session,
        command_timeout=60,
    )
    return pool  # type: ignore[no-any-return]


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with the same codecs, for the CLI."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


# A connection that can open a transaction: a plain one, or one acquired from the pool.
TxConnection = asyncpg.Connection | PoolConnectionProxy
