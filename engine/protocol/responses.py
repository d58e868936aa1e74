"""Every payload the server sends (acks, events, HTTP bodies) as pydantic models, and the
protocol's JSON Schema built from them together with the request models of engine.protocol.requests.

These models are the single source of the typed protocol: `GET /v1/protocol.json` serves
`protocol_schema()`, clients/typescript/protocol.d.ts is generated from it, and the tests
validate what real clients receive against these models (extra keys forbidden), so a payload
that drifts from its model fails a test.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from engine.prompts.views import LIBRARY_ROUTES
from engine.protocol.history import HISTORY_EVENTS, HISTORY_ROUTES, Priority
from engine.protocol.requests import (
    ExecuteRequest,
    NewKeyRequest,
    ProviderKeyRequest,
    SubscribeRequest,
    TaskRef,
)

TaskStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
EndStatus = Literal["completed", "failed", "cancelled"]
ErrorCode = Literal[
    "invalid_request",
    "payload_too_large",
    "not_found",
    "forbidden",
    "missing_variables",
    "quota_exceeded",
    "rate_limited",
    "provider_error",
    "provider_unavailable",
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


class ServerDraining(_Payload):
    """The node is shutting down: reconnect (to another node) and resubscribe with after_seq."""

    reconnect: Literal[True]


class Usage(_Payload):
    input_tokens: int
    output_tokens: int
    total_tokens: int


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
    name: str | None
    messages: list[dict[str, Any]]
    variable_values: dict[str, Any]
    broker_values: dict[str, Any]
    tasks: list[TaskView]
    usage: Usage
    cost_usd: str
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
    cost_usd: str


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


# --- the protocol as data -----------------------------------------------------------------

# Client → server events: (request, success ack). Every ack may also be an ErrorAck.
CLIENT_EVENTS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "execute": (ExecuteRequest, ExecuteAck),
    "subscribe": (SubscribeRequest, SubscribeAck),
    "unsubscribe": (TaskRef, UnsubscribeAck),
    "cancel": (TaskRef, CancelAck),
}
SERVER_EVENTS: dict[str, type[BaseModel]] = {
    "task_chunk": TaskChunk,
    "task_done": TaskDone,
    "server_draining": ServerDraining,
    **HISTORY_EVENTS,  # runs_changed
}

# HTTP routes: "METHOD path" → (request body or None, success body or None for SSE / 204).
HTTP_ROUTES: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "GET /healthz": (None, Health),
    "GET /readyz": (None, Readiness),
    "POST /v1/executions": (ExecuteRequest, ExecutionAccepted),
    "GET /v1/tasks/{id}": (None, TaskView),
    "GET /v1/tasks/{id}/events": (None, TaskEventList),
    "GET /v1/tasks/{id}/stream": (None, None),
    "POST /v1/tasks/{id}/cancel": (None, CancelResult),
    "GET /v1/runs/{id}": (None, RunView),
    "GET /v1/me": (None, Me),
    "POST /v1/keys": (NewKeyRequest, KeyCreated),
    "GET /v1/keys": (None, KeyList),
    "GET /v1/usage": (None, UsageList),
    **LIBRARY_ROUTES,  # issue 4: prompts, builtins, orgs, projects, variables
    "PUT /v1/me/provider-keys/{provider}": (ProviderKeyRequest, ProviderKeyStored),
    "GET /v1/me/provider-keys": (None, ProviderKeyList),
    "DELETE /v1/me/provider-keys/{provider}": (None, None),
    **HISTORY_ROUTES,  # conversations, executions, prompt statistics
}

EXTRA_MODELS: tuple[type[BaseModel], ...] = (ErrorAck, HttpError, ConnectError)


def check_ack(event: str, ack: Any) -> None:
    """Validate an ack of a client event against its model (ValidationError if it drifted)."""
    if isinstance(ack, dict) and ack.get("ok") is False:
        ErrorAck.model_validate(ack)
    elif event in CLIENT_EVENTS:
        CLIENT_EVENTS[event][1].model_validate(ack)


def _all_models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    candidates: list[type[BaseModel] | None] = []
    for request, ack in CLIENT_EVENTS.values():
        candidates += [request, ack]
    candidates += list(SERVER_EVENTS.values())
    for body, answer in HTTP_ROUTES.values():
        candidates += [body, answer]
    candidates += list(EXTRA_MODELS)
    for model in candidates:
        if model is not None and model not in seen:
            seen.append(model)
    return seen


def _ref(model: type[BaseModel] | None) -> dict[str, str] | None:
    return None if model is None else {"$ref": f"#/$defs/{model.__name__}"}


def protocol_schema() -> dict[str, Any]:
    """One JSON Schema document: every payload under `$defs`, and maps of the Socket.IO
    events (`x-client-events`, `x-server-events`) and HTTP routes (`x-http`) onto them."""
    requests = {model for model, _ack in CLIENT_EVENTS.values()} | {
        body for body, _answer in HTTP_ROUTES.values() if body is not None
    }
    pairs = [(m, "validation" if m in requests else "serialization") for m in _all_models()]
    _keys, schema = models_json_schema(pairs, ref_template="#/$defs/{model}")  # type: ignore[arg-type]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "promptrelay client protocol v1",
        "$defs": schema.get("$defs", {}),
        "x-client-events": {
            name: {"payload": _ref(req), "ack": [_ref(ack), _ref(ErrorAck)]}
            for name, (req, ack) in CLIENT_EVENTS.items()
        },
        "x-server-events": {name: _ref(model) for name, model in SERVER_EVENTS.items()},
        "x-connect-error": _ref(ConnectError),
        "x-http": {
            route: {"body": _ref(body), "response": _ref(answer), "error": _ref(HttpError)}
            for route, (body, answer) in HTTP_ROUTES.items()
        },
    }
