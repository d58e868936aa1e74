"""The asyncpg pool, with JSON codecs so jsonb columns read and write Python values, and a
bounded wait for a free connection."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from contextvars import ContextVar
from typing import Literal

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


QuerySource = Literal["request", "background"]
_SOURCE: ContextVar[QuerySource] = ContextVar("query_source", default="request")


def count_as_background() -> None:
    """Count the statements of the current asyncio task (and of the tasks it starts) as
    `background`: a node's own periodic loop, not work a client's request caused. Call it
    first thing in such a loop."""
    _SOURCE.set("background")


async def _init_counted(on_query: Callable[[QuerySource], None], conn: asyncpg.Connection) -> None:
    await _init_connection(conn)
    # asyncpg calls loggers with call_soon from the task that ran the statement, so the
    # callback sees that task's context.
    conn.add_query_logger(lambda _record: on_query(_SOURCE.get()))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without the reset statement (a round trip per use): asyncpg still rolls back
    an open transaction, and nothing in db/ leaves session state behind (no LISTEN, no
    session-level SET, advisory locks released in `finally`)."""


class DatabaseBusy(Exception):
    """No Postgres connection became free in time (every one is in use, or Postgres is down)."""


# Postgres unreachable, restarting or out of free connections: trying again may help.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    DatabaseBusy,
    OSError,
    TimeoutError,
)


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
    group_commits = True  # task rows and finalizes go through db.groupcommit

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return _BoundedAcquire(self, timeout if timeout is not None else self.acquire_timeout_s)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 20,
    on_query: Callable[[QuerySource], None] | None = None,
    acquire_timeout_s: float | None = None,
) -> asyncpg.Pool:
    """Open a pool to `dsn`; `on_query`, when given, is called after every statement with its
    source (see `count_as_background`); with `acquire_timeout_s`, waits for a connection are
    bounded."""
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
