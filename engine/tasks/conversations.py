"""Conversations and history: the caller's runs (list, rename, archive, delete), the
executions list and a prompt's statistics. Every read is scoped to the caller in SQL."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
from redis.asyncio import Redis

from db import executions
from db import prompts as prompt_rows
from db import runs as run_rows
from db.executions import TaskFilter
from db.users import User
from engine.errors import InvalidRequest, NotFound
from engine.protocol import paging
from engine.protocol.requests import RunUpdate
from engine.providers.pricing import format_money
from engine.redis_keys import RedisKeys
from engine.status import LIVE, TaskStatus
from engine.tasks.dispatch import Dispatcher
from engine.tasks.runs_feed import announce

ARCHIVED = {"false": ("active",), "true": ("archived",), "all": ("active", "archived")}
STATUSES = tuple(TaskStatus)
_COST_PLACES = Decimal("0.0000000001")  # the 10 places of numeric(20, 10)


class Conversations:
    """Reads and edits of the caller's runs and tasks, beside the engine's execute."""

    def __init__(
        self, pool: asyncpg.Pool, redis: Redis, keys: RedisKeys, dispatcher: Dispatcher
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.keys = keys
        self.dispatcher = dispatcher

    async def list_runs(
        self, user: User, *, archived: str, text: str | None, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        """`{items, next_cursor}` of the caller's runs, most recently active first."""
        statuses = ARCHIVED.get(archived)
        if statuses is None:
            raise _bad("archived", "one of false, true, all")
        rows = await run_rows.list_runs(
            self.pool,
            user.id,
            statuses=statuses,
            text=text,
            limit=limit + 1,
            after=paging.after_time_and_id(cursor),
        )
        return paging.page(rows, limit, run_summary, paging.by_time_and_id("updated_at", "id"))

    async def update_run(self, user: User, run_id: UUID, change: RunUpdate) -> dict[str, Any]:
        """Rename and/or (un)archive the caller's run; announced as `updated`."""
        status = None if change.archived is None else ("archived" if change.archived else "active")
        row = await run_rows.update_run(
            self.pool,
            run_id,
            user.id,
            title=change.title,
            status=status,
        )
        if row is None:
            raise NotFound("run not found")
        view = run_summary(row)
        await announce(self.redis, self.keys, user.id, run_id, "updated", view)
        return view

    async def delete_run(self, user: User, run_id: UUID) -> None:
        """Cancel the run's unfinished tasks, then delete the run, its tasks and their events
        (usage-log rows stay). Afterwards every route answers not_found for them."""
        tasks = await run_rows.run_tasks(self.pool, run_id, user.id)
        running = [str(t["task_id"]) for t in tasks if t["status"] in LIVE]
        if running:  # finalized first, so their usage is logged before the rows go
            await asyncio.gather(*(self.dispatcher.cancel(t) for t in running))
        if not await run_rows.delete_run(self.pool, run_id, user.id):
            raise NotFound("run not found")
        # a retried execute with one of their request_ids must not answer a deleted task
        keys = self.keys
        replays = [keys.idempotency(user.id, t["request_id"]) for t in tasks if t["request_id"]]
        if replays:
            await self.redis.delete(*replays)
        await announce(self.redis, keys, user.id, run_id, "deleted")

    async def list_tasks(
        self, user: User, where: TaskFilter, *, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        """`{items, next_cursor}` of the caller's tasks, newest first."""
        if where.status is not None and where.status not in STATUSES:
            raise _bad("status", "one of " + ", ".join(STATUSES))
        rows = await executions.list_tasks(
            self.pool, user.id, where, limit=limit + 1, after=paging.after_time_and_id(cursor)
        )
        return paging.page(
            rows, limit, task_summary, paging.by_time_and_id("created_at", "task_id")
        )

    async def prompt_stats(
        self, user: User, prompt_id: UUID, start: datetime | None, end: datetime | None
    ) -> dict[str, Any]:
        """Per-version and total figures of the caller's executions of their prompt."""
        if not await prompt_rows.owns_prompt(self.pool, prompt_id, user.id):
            raise NotFound("prompt not found")
        rows = await executions.prompt_stats(self.pool, prompt_id, user.id, start, end)
        total = next(r for r in rows if r["total"])
        return {
            "prompt_id": str(prompt_id),
            "from": start.isoformat() if start else None,
            "to": end.isoformat() if end else None,
            "total": stats_row(total),
            "versions": [stats_row(r) for r in rows if not r["total"]],
        }


def _bad(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"bad `{field}`: {message}", details={"errors": [{"field": field, "message": message}]}
    )


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format_money(value.quantize(_COST_PLACES))


def run_cost(row: asyncpg.Record) -> str | None:
    """A run's cost over its priced tasks; None when it has ended tasks and none was priced
    (`unpriced_tasks` says how many were left out)."""
    unpriced, ended = row["unpriced_tasks"], row["task_count"]
    if ended and unpriced == ended:
        return None
    return format_money(row["total_cost_usd"])


def run_summary(row: asyncpg.Record) -> dict[str, Any]:
    preview = row["preview"]
    return {
        "id": str(row["id"]),
        "title": row["name"],
        "archived": row["status"] == "archived",
        "last_message": None
        if preview is None
        else {"role": row["preview_role"] or "", "preview": preview},
        "task_count": row["task_count"],
        "usage": {
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "total_tokens": row["total_tokens"],
            "reasoning_tokens": row["reasoning_tokens"],
        },
        "cost_usd": run_cost(row),
        "unpriced_tasks": row["unpriced_tasks"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def new_run_summary(run_id: UUID, title: str, created_at: datetime) -> dict[str, Any]:
    """A run just created, as the list shows it (no task has ended yet)."""
    stamp = created_at.isoformat()
    return {
        "id": str(run_id),
        "title": title,
        "archived": False,
        "last_message": None,
        "task_count": 0,
        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "reasoning_tokens": 0},
        "cost_usd": "0",
        "unpriced_tasks": 0,
        "created_at": stamp,
        "updated_at": stamp,
    }


def task_summary(row: asyncpg.Record) -> dict[str, Any]:
    usage = None
    if row["input_tokens"] is not None:
        usage = {
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "total_tokens": row["total_tokens"],
            "reasoning_tokens": row["reasoning_tokens"],
        }
    return {
        "id": str(row["task_id"]),
        "run_id": str(row["run_id"]) if row["run_id"] else None,
        "prompt_id": str(row["prompt_id"]) if row["prompt_id"] else None,
        "prompt_version": row["prompt_version"],
        "builtin": row["builtin"],
        "provider": row["provider"],
        "model": row["model"],
        "status": row["status"],
        "priority": row["priority"],
        "usage": usage,
        "cost_usd": _money(row["cost_usd"]),
        "ttft_ms": row["ttft_ms"],
        "latency_ms": row["latency_ms"],
        "created_at": row["created_at"].isoformat(),
        "ended_at": row["completed_at"].isoformat() if row["completed_at"] else None,
    }


def stats_row(row: asyncpg.Record) -> dict[str, Any]:
    passed, failed = row["validation_passed"], row["validation_failed"]
    return {
        "version": None if row["total"] else row["version"],
        "executions": row["executions"],
        "completed": row["completed"],
        "failed": row["failed"],
        "cancelled": row["cancelled"],
        "validation_passed": passed,
        "validation_failed": failed,
        "validation_pass_rate": passed / (passed + failed) if passed + failed else None,
        "latency_p50_ms": row["latency_p50"],
        "latency_p95_ms": row["latency_p95"],
        "ttft_p50_ms": row["ttft_p50"],
        "ttft_p95_ms": row["ttft_p95"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "total_tokens": row["total_tokens"],
        "priced_executions": row["priced"],
        "total_cost_usd": _money(row["total_cost"]),
        "average_cost_usd": _money(row["average_cost"]),
    }
