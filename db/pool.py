"""The asyncpg pool, with JSON codecs so jsonb columns read and write Python values, and a
bounded wait for a free connection."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            schema="pg_catalog",
            encoder=json.dumps,
            decoder=json.loads,
            format="text",
        )


async def _init_counted(on_query: Callable[[Any], None], conn: asyncpg.Connection) -> None:
    await _init_connection(conn)
    conn.add_query_logger(on_query)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without the reset statement (a round trip per use): asyncpg still rolls back
    an open transaction, and nothing in db/ leaves session state behind (no LISTEN, no
    session-level SET, advisory locks released in `finally`)."""


class DatabaseBusy(Exception):
    """No Postgres connection became free in time (every one is in use, or Postgres is down)."""


class _BoundedAcquire(PoolAcquireContext):
    __slots__ = ()

    async def __aenter__(self) -> PoolConnectionProxy:
        try:
            return await super().__aenter__()
        except TimeoutError:
            raise DatabaseBusy("no database connection free in time") from None


class BoundedPool(asyncpg.Pool):
    """A pool whose every acquire (also inside `pool.fetch` and friends) waits at most
    `acquire_timeout_s`, then raises DatabaseBusy instead of queueing without end."""

    acquire_timeout_s: float | None = None

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return _BoundedAcquire(self, timeout if timeout is not None else self.acquire_timeout_s)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 20,
    on_query: Callable[[Any], None] | None = None,
    acquire_timeout_s: float | None = None,
) -> asyncpg.Pool:
    """Open a pool to `dsn`; `on_query`, when given, is called after every statement; with
    `acquire_timeout_s`, waits for a connection are bounded."""
    init = _init_connection if on_query is None else functools.partial(_init_counted, on_query)
    pool = BoundedPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        init=init,
        reset=_keep_session,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=60,
    )
    pool.acquire_timeout_s = acquire_timeout_s
    await pool
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with the same codecs, for the CLI."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


# A connection that can open a transaction: a plain one, or one acquired from the pool.
TxConnection = asyncpg.Connection | PoolConnectionProxy
