"""Owner of every running task on this node: starts, cancels and awaits them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from engine.tasks.runner import CancelReason

log = logging.getLogger(__name__)

TaskFactory = Callable[[dict[str, str]], Coroutine[Any, Any, dict[str, Any]]]


class TaskSupervisor:
    def __init__(self) -> None:
        self._running: dict[str, tuple[asyncio.Task[dict[str, Any]], dict[str, str]]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def start(self, task_id: str, factory: TaskFactory) -> asyncio.Task[dict[str, Any]]:
        """Run `factory(reason)` as the task's runner; `reason` says why it was cancelled."""
        reason: dict[str, str] = {}
        runner = asyncio.create_task(factory(reason), name=f"task-{task_id}")
        self._running[task_id] = (runner, reason)
        runner.add_done_callback(lambda t: self._finished(task_id, t))
        return runner

    def _finished(self, task_id: str, runner: asyncio.Task[dict[str, Any]]) -> None:
        self._running.pop(task_id, None)
        if not runner.cancelled() and runner.exception() is not None:
            log.error("runner of task %s raised", task_id, exc_info=runner.exception())

    def task_ids(self) -> list[str]:
        """The tasks running on this node now."""
        return list(self._running)

    def is_running(self, task_id: str) -> bool:
        return task_id in self._running

    async def cancel(self, task_id: str, why: str = CancelReason.CLIENT) -> bool:
        """Cancel the task if it runs here and wait until it has finalized."""
        entry = self._running.get(task_id)
        if entry is None:
            return False
        runner, reason = entry
        reason.setdefault("why", why)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return True

    async def close(self) -> None:
        """Stop every running task; they end `failed` with a retryable error."""
        await asyncio.gather(*(self.cancel(t, CancelReason.SHUTDOWN) for t in list(self._running)))
