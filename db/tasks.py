"""ai_tasks rows: created in one statement with their run, finalized in one statement.

Through a pool (`db.pool.create_pool`), the creates and the finalizes of concurrent tasks
are grouped (db/groupcommit.py): one statement writes the rows of every task waiting, each
caller still gets its own result once that statement has committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from db.groupcommit import json_row, pool_group
from db.pool import TxConnection

TASK_COLUMNS = (
    "task_id, run_id, user_id, prompt_id, prompt_version, builtin, provider, model, status,"
    " request, response_text, input_tokens, output_tokens, total_tokens, usage_source,"
    " cost_usd, last_seq, ttft_ms, latency_ms, finish_reason, error, validation_status,"
    " validation_errors, created_at, started_at, completed_at, priority, parent_task_id, step,"
    " tool_calls, tool_results, next_task_id, reasoning_text, reasoning_tokens"
)


@dataclass(frozen=True)
class NewTask:
    task_id: UUID
    user_id: UUID
    provider: str
    model: str
    request: dict[str, Any]
    run_id: UUID | None = None
    create_run: bool = False
    run_name: str = ""
    prompt_id: UUID | None = None
    prompt_version: int | None = None
    builtin: str | None = None
    agent_id: UUID | None = None  # the agent this task runs (sql/014_agents.sql)
    request_id: str | None = None
    variable_values: dict[str, Any] = field(default_factory=dict)
    broker_values: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # logged after `queued`
    priority: str = "normal"  # low | normal | high
    parent_task_id: UUID | None = None  # the task whose tool calls this one continues
    step: int = 1  # model calls of this tool conversation so far, this one included
    # Continuing a run: its task_count when its messages were read. The task is created only
    # while the run still has that many turns, so no turn is sent without the one before it.
    run_turns: int | None = None


@dataclass(frozen=True)
class TaskOutcome:
    status: str
    text: str
    input_tokens: int
    output_tokens: int
    usage_source: str
    cost_usd: Decimal | None
    last_seq: int
    ttft_ms: int | None
    latency_ms: int
    finish_reason: str
    error: dict[str, Any] | None
    validation_status: str
    run_messages: list[dict[str, Any]]
    events: list[dict[str, Any]]
    validation_errors: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] | None = None  # the calls the answer asked for
    next_task_id: UUID | None = None  # the continuation that will send their results
    reasoning_tokens: int = 0  # the part of output_tokens spent on reasoning
    reasoning: str | None = None  # the model's reasoning text (sql/017_reasoning.sql)


_CREATE = """
WITH r AS (
    INSERT INTO ai_runs (id, user_id, prompt_id, name, variable_values, broker_values)
    SELECT $2, $3, $4, $5, $6, $7 WHERE $8::bool
    RETURNING id, created_at
), t AS (
    INSERT INTO ai_tasks (task_id, run_id, user_id, prompt_id, prompt_version, builtin,
                          request_id, provider, model, status, request, started_at, priority,
                          parent_task_id, step, agent_id)
    VALUES ($1, $2, $3, $4, $9, $10, $11, $12, $13, 'running', $14, now(), $16, $17, $18,
            $19)
    RETURNING task_id
)
INSERT INTO task_events (task_id, kind, message, metadata)
SELECT task_id, kind, message, metadata FROM (
    SELECT t.task_id, 0::bigint AS ord, 'queued' AS kind, 'task created' AS message,
           jsonb_build_object('provider', $12::text, 'model', $13::text) AS metadata
    FROM t
    UNION ALL
    SELECT t.task_id, ev.ord, ev.kind, COALESCE(ev.message, ''), COALESCE(ev.metadata, '{}')
    FROM t, ROWS FROM (jsonb_to_recordset($15::jsonb)
                       AS (kind text, message text, metadata jsonb))
         WITH ORDINALITY AS ev(kind, message, metadata, ord)
) e ORDER BY ord
RETURNING (SELECT created_at FROM r)
"""

# The run's turns, and whether a task of it other than this one is still going (a tool
# continuation, which RUN_TURN_INDEX leaves out: it starts while its asking task runs).
_TURN_STATE = """
SELECT task_count, EXISTS (
    SELECT 1 FROM ai_tasks
    WHERE run_id = $1 AND task_id <> $2 AND status IN ('queued', 'running')
) AS busy
FROM ai_runs WHERE id = $1
"""

RUN_TURN_INDEX = "ai_tasks_run_turn_idx"  # sql/010_run_turns.sql


class TurnConflict(Exception):
    """The run's turn is taken: another task of the run is running, or one ended after the
    caller read the run's messages."""


async def create_task(conn: asyncpg.Connection | asyncpg.Pool, task: NewTask) -> datetime | None:
    """Insert the task (status running) and, when asked, its new run: one round trip.
    Returns the new run's `created_at` (None when no run was created). TurnConflict when the
    run's turn is taken (see NewTask.run_turns and RUN_TURN_INDEX)."""
    if task.run_turns is None:
        group = pool_group(conn, "task_creates", _create_many, _insert, key=_task_id)
        if group is not None:
            return await group.submit(task)
        return await _insert(conn, task)
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as held:
            return await _insert_turn(held, task)
    return await _insert_turn(conn, task)


async def _insert_turn(conn: TxConnection, task: NewTask) -> datetime | None:
    """The next turn of a run, only while the run still has the turns its messages were read
    with. The insert comes first: RUN_TURN_INDEX makes it wait out a finalize of the run's
    turn in progress, so the count read after it (a new statement, a new snapshot) includes
    that turn. No row lock is taken on the run, so nothing waits in a circle with finalize."""
    async with conn.transaction():
        created = await _insert(conn, task)
        run = await conn.fetchrow(_TURN_STATE, task.run_id, task.task_id)
        if run is None or run["task_count"] != task.run_turns:
            raise TurnConflict("the run changed since its messages were read")  # rolls back
        if run["busy"]:  # a tool step of the run still going: it is the run's turn
            raise TurnConflict("the run has a turn running")
    return created


async def _insert(
    conn: asyncpg.Connection | asyncpg.Pool | TxConnection, task: NewTask
) -> datetime | None:
    try:
        created: datetime | None = await conn.fetchval(
            _CREATE,
            task.task_id,
            task.run_id,
            task.user_id,
            task.prompt_id,
            task.run_name,
            task.variable_values,
            task.broker_values,
            task.create_run,
            task.prompt_version,
            task.builtin,
            task.request_id,
            task.provider,
            task.model,
            task.request,
            task.events,
            task.priority,
            task.parent_task_id,
            task.step,
            task.agent_id,
        )
    except asyncpg.UniqueViolationError as e:
        if e.constraint_name != RUN_TURN_INDEX:
            raise
        raise TurnConflict("the run has a turn running") from e
    return created


async def running_turn(conn: asyncpg.Connection | asyncpg.Pool, run_id: UUID) -> UUID | None:
    """The run's task that is still queued or running, if any."""
    found: UUID | None = await conn.fetchval(
        "SELECT task_id FROM ai_tasks WHERE run_id = $1 AND status IN ('queued', 'running')",
        run_id,
    )
    return found


_FINALIZE = """
WITH t AS (
    UPDATE ai_tasks SET status = $2, response_text = $3, input_tokens = $4::int,
        output_tokens = $5::int, total_tokens = $4::int + $5::int, usage_source = $6,
        cost_usd = $7::numeric, last_seq = $8, ttft_ms = $9, latency_ms = $10,
        finish_reason = $11, error = $12, validation_status = $13, validation_errors = $16,
        tool_calls = $17, next_task_id = $18, reasoning_text = $19,
        reasoning_tokens = $20::int,
        completed_at = GREATEST(now(), started_at)
    WHERE task_id = $1 AND status IN ('queued', 'running')
    RETURNING task_id, run_id, user_id, provider, model
), r AS (
    UPDATE ai_runs SET messages = ai_runs.messages || $14::jsonb,
        input_tokens = ai_runs.input_tokens + $4::int,
        output_tokens = ai_runs.output_tokens + $5::int,
        reasoning_tokens = ai_runs.reasoning_tokens + $20::int,
        total_tokens = ai_runs.total_tokens + $4::int + $5::int,
        total_cost_usd = ai_runs.total_cost_usd + COALESCE($7::numeric, 0),
        unpriced_tasks = ai_runs.unpriced_tasks + ($7::numeric IS NULL)::int,
        task_count = ai_runs.task_count + 1, updated_at = now()
    FROM t WHERE ai_runs.id = t.run_id
), u AS (
    INSERT INTO ai_usage_logs (task_id, user_id, tier, provider, model, input_tokens,
                               output_tokens, cost_usd, status, day, reasoning_tokens)
    SELECT t.task_id, t.user_id,
           COALESCE((SELECT tier FROM user_ai_settings s WHERE s.user_id = t.user_id), 'free'),
           t.provider, t.model, $4::int, $5::int, $7::numeric, $2,
           (now() AT TIME ZONE 'UTC')::date, $20::int
    FROM t
    ON CONFLICT (task_id) DO NOTHING
), e AS (
    INSERT INTO task_events (task_id, at, level, kind, message, metadata)
    SELECT t.task_id, ev.at, ev.level, ev.kind, ev.message, COALESCE(ev.metadata, '{}')
    FROM t, jsonb_to_recordset($15::jsonb)
         AS ev(at timestamptz, level text, kind text, message text, metadata jsonb)
)
SELECT count(*) FROM t
"""


async def finalize_task(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: UUID, out: TaskOutcome
) -> bool:
    """Record the task's outcome, its run's totals, its usage row and its events atomically.

    Idempotent: a task that has already ended is left as it is and False is returned.
    """
    group = pool_group(
        conn,
        "task_finalizes",
        _finalize_many,
        lambda pool, item: _finalize_one(pool, *item),
        key=lambda item: item[0],
    )
    if group is not None:
        return await group.submit((task_id, out))
    return await _finalize_one(conn, task_id, out)


async def _finalize_one(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: UUID, out: TaskOutcome
) -> bool:
    count = await conn.fetchval(
        _FINALIZE,
        task_id,
        out.status,
        out.text,
        out.input_tokens,
        out.output_tokens,
        out.usage_source,
        out.cost_usd,
        out.last_seq,
        out.ttft_ms,
        out.latency_ms,
        out.finish_reason,
        out.error,
        out.validation_status,
        out.run_messages,
        out.events,
        out.validation_errors,
        out.tool_calls,
        out.next_task_id,
        out.reasoning,
        out.reasoning_tokens,
    )
    return bool(count)


async def get_task(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: UUID, user_id: UUID
) -> asyncpg.Record | None:
    """The caller's task, or None (also when it is someone else's)."""
    return await conn.fetchrow(
        f"SELECT {TASK_COLUMNS} FROM ai_tasks WHERE task_id = $1 AND user_id = $2",
        task_id,
        user_id,
    )


async def find_by_request_id(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: UUID, request_id: str
) -> asyncpg.Record | None:
    """The caller's most recent task with this idempotency key in the last 24 hours."""
    return await conn.fetchrow(
        "SELECT task_id, run_id, status FROM ai_tasks WHERE user_id = $1 AND request_id = $2"
        " AND created_at > now() - interval '24 hours' ORDER BY created_at DESC LIMIT 1",
        user_id,
        request_id,
    )


async def list_run_tasks(
    conn: asyncpg.Connection | asyncpg.Pool, run_id: UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {TASK_COLUMNS} FROM ai_tasks WHERE run_id = $1 ORDER BY created_at",
        run_id,
    )


async def list_events(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: UUID, user_id: UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT e.at, e.level, e.kind, e.message, e.metadata FROM task_events e"
        " JOIN ai_tasks t ON t.task_id = e.task_id"
        " WHERE e.task_id = $1 AND t.user_id = $2 ORDER BY e.id",
        task_id,
        user_id,
    )


async def get_task_unscoped(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: UUID
) -> asyncpg.Record | None:
    """A task by id alone, for internal use after the caller's ownership was checked."""
    return await conn.fetchrow(f"SELECT {TASK_COLUMNS} FROM ai_tasks WHERE task_id = $1", task_id)


async def list_stale_running(
    conn: asyncpg.Connection | asyncpg.Pool, older_than_s: float, limit: int = 100
) -> list[UUID]:
    """Tasks still queued or running that started more than `older_than_s` seconds ago."""
    rows = await conn.fetch(
        "SELECT task_id FROM ai_tasks WHERE status IN ('queued', 'running')"
        " AND started_at < now() - make_interval(secs => $1) ORDER BY started_at LIMIT $2",
        older_than_s,
        limit,
    )
    return [r["task_id"] for r in rows]


# The grouped forms: one jsonb array of rows in, the same writes as _CREATE / _FINALIZE for
# each, in the order given.
_CREATE_MANY = """
WITH x AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
        n int, task_id uuid, run_id uuid, user_id uuid, prompt_id uuid, run_name text,
        variable_values jsonb, broker_values jsonb, create_run bool, prompt_version int,
        builtin text, request_id text, provider text, model text, request jsonb,
        events jsonb, priority text, parent_task_id uuid, step int, agent_id uuid)
), r AS (
    INSERT INTO ai_runs (id, user_id, prompt_id, name, variable_values, broker_values)
    SELECT run_id, user_id, prompt_id, run_name, variable_values, broker_values
    FROM x WHERE create_run ORDER BY n
    RETURNING id, created_at
), t AS (
    INSERT INTO ai_tasks (task_id, run_id, user_id, prompt_id, prompt_version, builtin,
                          request_id, provider, model, status, request, started_at, priority,
                          parent_task_id, step, agent_id)
    SELECT task_id, run_id, user_id, prompt_id, prompt_version, builtin, request_id, provider,
           model, 'running', request, now(), priority, parent_task_id, step, agent_id
    FROM x ORDER BY n
    RETURNING task_id
), e AS (
    INSERT INTO task_events (task_id, kind, message, metadata)
    SELECT task_id, kind, message, metadata FROM (
        SELECT x.task_id, x.n, 0::bigint AS ord, 'queued' AS kind, 'task created' AS message,
               jsonb_build_object('provider', x.provider, 'model', x.model) AS metadata
        FROM t JOIN x USING (task_id)
        UNION ALL
        SELECT x.task_id, x.n, ev.ord, ev.kind, COALESCE(ev.message, ''),
               COALESCE(ev.metadata, '{}')
        FROM t JOIN x USING (task_id),
             ROWS FROM (jsonb_to_recordset(x.events)
                        AS (kind text, message text, metadata jsonb))
             WITH ORDINALITY AS ev(kind, message, metadata, ord)
    ) e ORDER BY n, ord
)
SELECT x.n, r.created_at FROM x LEFT JOIN r ON x.create_run AND r.id = x.run_id ORDER BY x.n
"""


def _task_id(task: NewTask) -> UUID:
    return task.task_id


async def _create_many(pool: asyncpg.Pool, tasks: list[NewTask]) -> list[datetime | None]:
    found = await pool.fetch(_CREATE_MANY, [json_row(n, t) for n, t in enumerate(tasks)])
    return [r["created_at"] for r in found]


_FINALIZE_MANY = """
WITH x AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
        n int, task_id uuid, status text, text text, input_tokens int, output_tokens int,
        usage_source text, cost_usd numeric, last_seq int, ttft_ms int, latency_ms int,
        finish_reason text, error jsonb, validation_status text, run_messages jsonb,
        events jsonb, validation_errors jsonb, tool_calls jsonb, next_task_id uuid,
        reasoning text, reasoning_tokens int)
), t AS (
    UPDATE ai_tasks SET status = x.status, response_text = x.text,
        input_tokens = x.input_tokens, output_tokens = x.output_tokens,
        total_tokens = x.input_tokens + x.output_tokens, usage_source = x.usage_source,
        cost_usd = x.cost_usd, last_seq = x.last_seq, ttft_ms = x.ttft_ms,
        latency_ms = x.latency_ms, finish_reason = x.finish_reason, error = x.error,
        validation_status = x.validation_status, validation_errors = x.validation_errors,
        tool_calls = x.tool_calls, next_task_id = x.next_task_id,
        reasoning_text = x.reasoning, reasoning_tokens = x.reasoning_tokens,
        completed_at = GREATEST(now(), ai_tasks.started_at)
    FROM x
    WHERE ai_tasks.task_id = x.task_id AND ai_tasks.status IN ('queued', 'running')
    RETURNING ai_tasks.task_id, ai_tasks.run_id, ai_tasks.user_id, ai_tasks.provider,
              ai_tasks.model, x.n, x.status, x.input_tokens, x.output_tokens,
              x.reasoning_tokens, x.cost_usd, x.run_messages, x.events
), runs AS (
    SELECT t.run_id, sum(t.input_tokens) AS input_tokens,
           sum(t.output_tokens) AS output_tokens,
           sum(t.reasoning_tokens) AS reasoning_tokens,
           sum(COALESCE(t.cost_usd, 0)) AS cost_usd,
           count(*) FILTER (WHERE t.cost_usd IS NULL) AS unpriced, count(*) AS tasks,
           (SELECT COALESCE(jsonb_agg(m.msg ORDER BY o.n, m.ord), '[]'::jsonb)
            FROM t AS o, jsonb_array_elements(o.run_messages) WITH ORDINALITY AS m(msg, ord)
            WHERE o.run_id = t.run_id) AS messages
    FROM t WHERE t.run_id IS NOT NULL GROUP BY t.run_id
), r AS (
    UPDATE ai_runs SET messages = ai_runs.messages || runs.messages,
        input_tokens = ai_runs.input_tokens + runs.input_tokens,
        output_tokens = ai_runs.output_tokens + runs.output_tokens,
        reasoning_tokens = ai_runs.reasoning_tokens + runs.reasoning_tokens,
        total_tokens = ai_runs.total_tokens + runs.input_tokens + runs.output_tokens,
        total_cost_usd = ai_runs.total_cost_usd + runs.cost_usd,
        unpriced_tasks = ai_runs.unpriced_tasks + runs.unpriced,
        task_count = ai_runs.task_count + runs.tasks, updated_at = now()
    FROM runs WHERE ai_runs.id = runs.run_id
), u AS (
    INSERT INTO ai_usage_logs (task_id, user_id, tier, provider, model, input_tokens,
                               output_tokens, cost_usd, status, day, reasoning_tokens)
    SELECT t.task_id, t.user_id,
           COALESCE((SELECT tier FROM user_ai_settings s WHERE s.user_id = t.user_id), 'free'),
           t.provider, t.model, t.input_tokens, t.output_tokens, t.cost_usd, t.status,
           (now() AT TIME ZONE 'UTC')::date, t.reasoning_tokens
    FROM t ORDER BY t.n
    ON CONFLICT (task_id) DO NOTHING
), e AS (
    INSERT INTO task_events (task_id, at, level, kind, message, metadata)
    SELECT t.task_id, ev.at, ev.level, ev.kind, ev.message, COALESCE(ev.metadata, '{}')
    FROM t, ROWS FROM (jsonb_to_recordset(t.events)
                       AS (at timestamptz, level text, kind text, message text,
                           metadata jsonb))
         WITH ORDINALITY AS ev(at, level, kind, message, metadata, ord)
    ORDER BY t.n, ev.ord
)
SELECT n FROM t
"""


async def _finalize_many(pool: asyncpg.Pool, items: list[tuple[UUID, TaskOutcome]]) -> list[bool]:
    rows = [json_row(n, out, task_id=str(task_id)) for n, (task_id, out) in enumerate(items)]
    landed = {r["n"] for r in await pool.fetch(_FINALIZE_MANY, rows)}
    return [n in landed for n in range(len(items))]
