"""Every payload the server sends (acks, events, HTTP bodies) as pydantic models.

With the request models (engine.protocol.requests) they are the single source of the typed
protocol: server/protocol/contract.py maps events and routes onto them and builds
`GET /v1/protocol.json`, clients/typescript/protocol.d.ts is generated from that, and the
tests validate what real clients receive against these models (extra keys forbidden), so a
payload that drifts from its model fails a test.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.protocol.conversations import Priority
from engine.status import TaskStatus
from engine.usage import Usage

EndStatus = Literal[TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED]
ErrorCode = Literal[
    "invalid_request",
    "payload_too_large",
    "not_found",
    "method_not_allowed",
    "forbidden",
    "missing_variables",
    "quota_exceeded",
    "rate_limited",
    "run_busy",
    "provider_error",
    "provider_unavailable",
    "service_unavailable",
    "timeout",
    "cancelled",
    "unauthorized",
    "internal",
]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- errors -------------------------------------------------------------------------------


class ErrorBody(_Payload):
    """The `error` of a failed ack or HTTP response. `details` depends on the code."""

    code: ErrorCode
    message: str
    details: dict[str, Any] | None = None


class ErrorAck(_Payload):
    ok: Literal[False]
    error: ErrorBody


class HttpError(_Payload):
    """Body of every HTTP error response."""

    error: ErrorBody


class ConnectErrorData(_Payload):
    """`err.data` of socket.io-client's `connect_error` when the token is refused
    (`unauthorized`) or the user has too many connections open (`rate_limited`)."""

    code: Literal["unauthorized", "rate_limited"]
    message: str
    details: dict[str, Any] | None = None  # `retry_after_ms` with `rate_limited`


class ConnectError(_Payload):
    """The CONNECT_ERROR packet: socket.io-client's `err.message` and `err.data`."""

    message: str
    data: ConnectErrorData


# --- acks ---------------------------------------------------------------------------------


class ExecuteAck(_Payload):
    ok: Literal[True]
    task_id: str
    run_id: str | None
    status: TaskStatus


class SubscribeAck(_Payload):
    ok: Literal[True]
    status: TaskStatus
    last_seq: int


class UnsubscribeAck(_Payload):
    ok: Literal[True]


class CancelAck(_Payload):
    ok: Literal[True]
    status: TaskStatus


# --- server → client events ----------------------------------------------------------------


class TaskChunk(_Payload):
    task_id: str
    seq: int = Field(ge=1)
    text: str


class TaskReasoning(_Payload):
    """A piece of the model's reasoning (docs/protocol.md "Reasoning"): never part of the
    answer's `text`. Numbered in the chunks' sequence."""

    task_id: str
    seq: int = Field(ge=1)
    text: str


class TaskToolCall(_Payload):
    """A piece of a tool call the model is writing: `arguments_delta` is the next part of
    the call's argument text (concatenate them per `call_id`). Numbered in the chunks'
    sequence."""

    task_id: str
    seq: int = Field(ge=1)
    index: int = Field(ge=0, description="the call's place among the answer's calls")
    call_id: str
    name: str
    arguments_delta: str


class ToolCall(_Payload):
    """A finished call: `arguments` parsed; null when the model's text is not a JSON object,
    then `arguments_text` holds that text and `arguments_error` says why."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    arguments_text: str | None = None
    arguments_error: str | None = None


class ToolResultAck(_Payload):
    """`tool_result` ack (and, without `ok`, the answer of `POST /v1/tasks/{id}/tool_results`)."""

    ok: Literal[True]
    task_id: str
    call_id: str
    next_task_id: str | None = Field(description="the continuation that sends the results")
    pending: list[str] = Field(description="calls of the step still without a result")


class ToolResultAccepted(_Payload):
    """Answer of `POST /v1/tasks/{id}/tool_results`."""

    task_id: str
    call_id: str
    next_task_id: str | None
    pending: list[str]


class ServerDraining(_Payload):
    """The node is shutting down: reconnect (to another node) and resubscribe with after_seq."""

    reconnect: Literal[True]


class SessionEnded(_Payload):
    """The server ends this connection for authentication (its JWT expired, its key was
    revoked or its user deleted): the last event before the disconnect. Reconnect with a
    fresh token and resubscribe with after_seq; the same token is refused."""

    code: Literal["unauthorized"]
    message: str


class Validation(_Payload):
    status: Literal["passed", "failed", "skipped"]
    errors: list[Any]


class TaskError(_Payload):
    code: ErrorCode
    message: str
    retryable: bool


class TaskDone(_Payload):
    task_id: str
    run_id: str | None
    status: EndStatus
    text: str
    last_seq: int
    finish_reason: str | None
    provider: str
    model: str
    usage: Usage | None
    cost_usd: str | None = Field(description="decimal string; null when the price is unknown")
    ttft_ms: int | None
    latency_ms: int | None
    validation: Validation
    error: TaskError | None
    tool_calls: list[ToolCall] | None = Field(
        None, description="the calls the answer asked for (finish_reason tool_calls)"
    )
    next_task_id: str | None = Field(
        None, description="the task that continues with the calls' results (docs/tools.md)"
    )
    refusal: str | None = Field(
        None,
        description="the provider declined to answer (finish_reason content_filter): its "
        "refusal message, or its reason when it gives none (docs/providers.md)",
    )
    reasoning: str | None = Field(
        None, description="the model's whole reasoning text, apart from `text`; null when none"
    )


# --- HTTP bodies --------------------------------------------------------------------------


class ExecutionAccepted(_Payload):
    """`202` answer of `POST /v1/executions`."""

    task_id: str
    run_id: str | None
    status: TaskStatus


class CancelResult(_Payload):
    """Answer of `POST /v1/tasks/{id}/cancel`."""

    status: TaskStatus


class TaskView(_Payload):
    """`GET /v1/tasks/{id}`."""

    id: str
    run_id: str | None
    status: TaskStatus
    provider: str
    model: str
    request: dict[str, Any]
    text: str | None
    reasoning: str | None = Field(None, description="the model's reasoning text, if any")
    usage: Usage | None
    usage_source: Literal["provider", "estimated"] | None
    cost_usd: str | None
    ttft_ms: int | None
    latency_ms: int | None
    finish_reason: str | None
    validation: Validation
    error: TaskError | None
    last_seq: int
    prompt_id: str | None
    prompt_version: int | None
    builtin: str | None
    priority: Priority
    created_at: str
    ended_at: str | None
    parent_task_id: str | None = None
    step: int = 1
    tool_calls: list[ToolCall] | None = None
    tool_results: dict[str, str] | None = None
    next_task_id: str | None = None


class TaskEvent(_Payload):
    at: str
    level: str
    kind: str
    message: str
    data: dict[str, Any]


class TaskEventList(_Payload):
    """`GET /v1/tasks/{id}/events`."""

    items: list[TaskEvent]


class RunView(_Payload):
    """`GET /v1/runs/{id}`."""

    id: str
    title: str | None
    # The same title under its old name, kept for clients written before `title`; it goes
    # away in the next minor release (CHANGELOG).
    name: str | None = Field(None, deprecated=True, description="The old name of `title`.")
    messages: list[dict[str, Any]]
    variable_values: dict[str, Any]
    broker_values: dict[str, Any]
    tasks: list[TaskView]
    usage: Usage
    cost_usd: str | None  # over the priced tasks; null when it has tasks and none was priced
    unpriced_tasks: int  # ended tasks without a known price, left out of cost_usd
    task_count: int
    created_at: str
    updated_at: str


# --- account (docs/tenancy.md) ----------------------------------------------------------


class TierLimits(_Payload):
    """Tasks per quota day and month (null: unlimited) and the running-task cap."""

    daily: int | None
    monthly: int | None
    concurrent_tasks: int


class UsageToday(_Payload):
    day: str
    tasks_today: int
    tasks_this_month: int
    day_resets_at: str
    month_resets_at: str


class Me(_Payload):
    """`GET /v1/me`."""

    id: str
    email: str | None
    tier: Literal["free", "premium", "byok"]
    limits: TierLimits
    usage_today: UsageToday


class KeyCreated(_Payload):
    """`201` answer of `POST /v1/keys`: the only time the key itself is shown."""

    id: str
    name: str
    prefix: str
    key: str


class KeyInfo(_Payload):
    id: str
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class KeyList(_Payload):
    """`GET /v1/keys` (no key material)."""

    items: list[KeyInfo]
    next_cursor: str | None


class UsageRow(_Payload):
    day: str
    provider: str
    model: str
    tasks: int
    input_tokens: int
    output_tokens: int
    cost_usd: str | None  # over the priced tasks; null when none was priced
    unpriced_tasks: int  # tasks without a known price, left out of cost_usd


class UsageList(_Payload):
    """`GET /v1/usage?from=&to=`: the caller's totals by day, provider and model."""

    items: list[UsageRow]


class Health(_Payload):
    """`GET /healthz`."""

    ok: bool


class Readiness(_Payload):
    """`GET /readyz`."""

    ok: bool
    postgres: bool
    redis: bool


class ProviderKeyStored(_Payload):
    """`PUT /v1/me/provider-keys/{provider}`: only the key's last four characters."""

    provider: str
    last4: str


class ProviderKeyItem(_Payload):
    provider: str
    last4: str
    updated_at: str | None


class ProviderKeyList(_Payload):
    """`GET /v1/me/provider-keys`."""

    items: list[ProviderKeyItem]
