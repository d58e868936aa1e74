"""The event loop: uvloop where installed (faster sockets and timers), asyncio otherwise."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh event loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the same kind `run_loop` uses (for the node runner)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def tune_gc(threshold0: int) -> None:
    """Collect the youngest generation every `threshold0` allocations (Python's default is
    700) and freeze what startup allocated. With thousands of sockets a server keeps many
    long-lived objects; frequent collections then stall chunk delivery (see
    docs/benchmarks.md). 0 leaves the collector as it is."""
    if threshold0 > 0:
        gc.freeze()
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(threshold0, gen1, gen2)
