"""Payloads of conversations and history (docs/conversations.md): the run list, renaming and
deleting runs, the executions list, a prompt's statistics, and the `runs_changed` event.

Mapped into the protocol by engine.protocol.responses (HTTP_ROUTES, SERVER_EVENTS).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.protocol.requests import RunUpdate
from engine.status import TaskStatus

Priority = Literal["low", "normal", "high"]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tokens(_Payload):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    reasoning_tokens: int = 0  # the part of output_tokens spent on reasoning


class LastMessage(_Payload):
    role: str
    preview: str  # the first characters of the newest message of the run


class RunSummary(_Payload):
    """One conversation in `GET /v1/runs`; also the answer of `PATCH /v1/runs/{id}`."""

    id: str
    title: str
    archived: bool
    last_message: LastMessage | None
    task_count: int
    usage: Tokens
    cost_usd: str | None  # over the priced tasks; null when it has tasks and none was priced
    unpriced_tasks: int  # ended tasks without a known price, left out of cost_usd
    created_at: str
    updated_at: str  # the last activity: the run's creation or its latest finished task


class RunPage(_Payload):
    """`GET /v1/runs?limit=&cursor=&q=&archived=`: most recently active first."""

    items: list[RunSummary]
    next_cursor: str | None


class TaskSummary(_Payload):
    id: str
    run_id: str | None
    prompt_id: str | None
    prompt_version: int | None
    builtin: str | None
    provider: str
    model: str
    status: TaskStatus
    priority: Priority
    usage: Tokens | None
    cost_usd: str | None
    ttft_ms: int | None
    latency_ms: int | None
    created_at: str
    ended_at: str | None


class TaskPage(_Payload):
    """`GET /v1/tasks?run_id=&prompt_id=&status=&from=&to=&limit=&cursor=`: newest first."""

    items: list[TaskSummary]
    next_cursor: str | None


class PromptStatsRow(_Payload):
    """Figures of one version (or, with `version` null, of all of them)."""

    version: int | None
    executions: int
    completed: int
    failed: int
    cancelled: int
    validation_passed: int
    validation_failed: int
    validation_pass_rate: float | None  # passed / (passed + failed); null when neither
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    priced_executions: int
    total_cost_usd: str | None  # over priced executions; null when none was priced
    average_cost_usd: str | None


class PromptStats(_Payload):
    """`GET /v1/prompts/{id}/stats?from=&to=`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    prompt_id: str
    from_: str | None = Field(alias="from")  # the range asked for: from inclusive, to exclusive
    to: str | None
    total: PromptStatsRow
    versions: list[PromptStatsRow]


class RunsChanged(_Payload):
    """Sent to every socket of the run's owner, on every node, when a run is created,
    renamed or archived (`updated`), or deleted."""

    run_id: str
    change: Literal["created", "updated", "deleted"]
    run: RunSummary | None  # null for `deleted`


HISTORY_ROUTES: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "GET /v1/runs": (None, RunPage),
    "PATCH /v1/runs/{id}": (RunUpdate, RunSummary),
    "DELETE /v1/runs/{id}": (None, None),
    "GET /v1/tasks": (None, TaskPage),
    "GET /v1/prompts/{id}/stats": (None, PromptStats),
}
HISTORY_EVENTS: dict[str, type[BaseModel]] = {"runs_changed": RunsChanged}
