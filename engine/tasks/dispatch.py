"""Where the engine sends a recorded task to run, and how a cancel reaches its runner."""

from __future__ import annotations

from typing import Protocol

from engine.tasks.runner import RunnerDeps, TaskPlan, run_task
from engine.tasks.supervisor import TaskSupervisor


class Dispatcher(Protocol):
    async def dispatch(self, plan: TaskPlan) -> None:
        """Have the task run (here or on a worker); returns once it is handed over."""

    async def cancel(self, task_id: str) -> bool:
        """Cancel the task wherever it runs; True when it has ended (or was cancelled)."""


class LocalDispatcher:
    """Run tasks in this process, without leases (a single node that nothing else sees)."""

    def __init__(self, supervisor: TaskSupervisor, deps: RunnerDeps) -> None:
        self.supervisor = supervisor
        self.deps = deps

    async def dispatch(self, plan: TaskPlan) -> None:
        self.supervisor.start(str(plan.task_id), lambda why: run_task(self.deps, plan, why))

    async def cancel(self, task_id: str) -> bool:
        return await self.supervisor.cancel(task_id)
