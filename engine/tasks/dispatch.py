"""Where the engine sends a recorded task to run, and how a cancel reaches its runner."""

from __future__ import annotations

from typing import Protocol

from engine.tasks.plan import TaskPlan


class Dispatcher(Protocol):
    """Given to the Engine when it is built: engine/cluster/node.py, by the node's role."""

    async def dispatch(self, plan: TaskPlan) -> None:
        """Have the task run (here or on a worker); returns once it is handed over."""

    async def cancel(self, task_id: str) -> bool:
        """Cancel the task wherever it runs; True when it has ended (or was cancelled)."""
