"""Helpers for the background loops a node owns (job consumer, heartbeat, sweeper...)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


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
