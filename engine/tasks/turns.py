"""One turn at a time per run: a task is created only when its run has no turn running and
has not moved on since its messages were read; otherwise the execute is refused `run_busy`.
The lock is the database's (`db.tasks.RUN_TURN_INDEX`), so it holds across nodes and goes
with the task's end, however the task ends."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from db import runs as run_rows
from db import tasks as task_rows
from engine.errors import NotFound, RunBusy


async def start_turn(pool: asyncpg.Pool, row: task_rows.NewTask) -> datetime | None:
    """`db.tasks.create_task`, with a taken turn answered as RunBusy (NotFound when the run
    was deleted meanwhile). Returns the new run's `created_at`, None when none was created."""
    try:
        return await task_rows.create_task(pool, row)
    except task_rows.TurnConflict:
        if row.run_id is None:  # only a run's task can conflict
            raise
        running = await task_rows.running_turn(pool, row.run_id)
        if running is None and await run_rows.get_run(pool, row.run_id, row.user_id) is None:
            raise NotFound("run not found") from None
        raise RunBusy(
            "the run's previous turn is still running; send this turn once it has ended",
            details={"task_id": str(running) if running else None},
        ) from None
