"""Riding out an outage of Redis or Postgres: retry with backoff, log it once each way.

An outage makes many operations fail at once (every watched task re-reads its history,
every flush retries); an operator needs one line when the store goes away and one when
it is back, not one per failed call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from engine.aio import check_cancelled

log = logging.getLogger(__name__)

T = TypeVar("T")

# Redis unreachable, restarting or loading its data.
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisError, OSError)


class Outage:
    """Tracks whether `what` is away; logs the start and the end of each outage once."""

    def __init__(self, what: str, logger: logging.Logger = log) -> None:
        self.what = what
        self.log = logger
        self.since: float | None = None
        self.outages = 0  # how many have started (tests and metrics read it)

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.outages += 1
            self.log.warning(
                "%s unreachable (%s); retrying until it is back", self.what, type(exc).__name__
            )

    def ok(self) -> None:
        if self.since is not None:
            self.log.warning("%s is back after %.1f s", self.what, time.monotonic() - self.since)
            self.since = None


async def retrying(
    call: Callable[[], Awaitable[T]],
    errors: tuple[type[BaseException], ...] = REDIS_DOWN,
    *,
    outage: Outage | None = None,
    give_up_s: float | None = None,
    stop: Callable[[], bool] | None = None,
    max_delay_s: float = 1.0,
) -> T:
    """`await call()` until it succeeds; its error is raised once `give_up_s` has passed
    or `stop()` says to stop waiting."""
    loop = asyncio.get_running_loop()
    deadline = None if give_up_s is None else loop.time() + give_up_s
    delay = 0.05
    while True:
        try:
            result = await call()
        except errors as exc:
            check_cancelled()
            if outage is not None:
                outage.failed(exc)
            if deadline is not None and loop.time() + delay > deadline:
                raise
            if stop is not None and stop():
                raise
            log.debug("retrying after %s", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
            continue
        if outage is not None:
            outage.ok()
        return result
