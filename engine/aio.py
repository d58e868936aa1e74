"""Helpers for the background loops a node owns (job consumer, heartbeat, sweeper, relay...):
starting one so that its death is logged, leaving one whose cancel a library swallowed, and
stopping them all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)


def check_cancelled() -> None:
    """Raise CancelledError if the current task is being cancelled.

    Call it after catching a library's connection error in a loop: on Python 3.11 a
    cancellation that meets a timeout inside `asyncio.timeout` can surface as TimeoutError
    (an OSError), and a loop that retries on OSError would never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel the tasks and wait until every one has ended, cancelling again if needed."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


def spawn_loop(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """Start a background loop; if it ever ends by an error, the log says which and why.

    The caller owns the task: it keeps the reference and stops it (see `stop`).
    """
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_report_death)
    return task


def _report_death(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background loop %s died", task.get_name(), exc_info=exc)


async def close_pubsub(pubsub: Any) -> None:
    """Close a redis-py pub/sub object. Its `aclose` is untyped in some redis-py releases and
    typed in others; reached through `Any`, it type-checks against both."""
    await pubsub.aclose()
