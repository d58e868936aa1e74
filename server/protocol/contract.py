"""The client contract as data: each Socket.IO event and HTTP route mapped onto its pydantic
models, and the one JSON Schema document built from them (`GET /v1/protocol.json`, the
TypeScript types, and docs/protocol.md's checks all read it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from engine.agents.models import AGENT_ROUTES, MEMBER_ROUTES
from engine.prompts.gallery_models import GALLERY_ROUTES
from engine.prompts.views import LIBRARY_ROUTES
from engine.protocol.conversations import HISTORY_EVENTS, HISTORY_ROUTES
from engine.protocol.openai_compat import ChatCompletionRequest
from engine.protocol.requests import (
    ExecuteRequest,
    NewKeyRequest,
    ProviderKeyRequest,
    SubscribeRequest,
    TaskRef,
)
from engine.protocol.responses import (
    CancelAck,
    CancelResult,
    ConnectError,
    ErrorAck,
    ExecuteAck,
    ExecutionAccepted,
    Health,
    HttpError,
    KeyCreated,
    KeyList,
    Me,
    ProviderKeyList,
    ProviderKeyStored,
    Readiness,
    RunView,
    ServerDraining,
    SessionEnded,
    SubscribeAck,
    TaskChunk,
    TaskDone,
    TaskEventList,
    TaskReasoning,
    TaskToolCall,
    TaskView,
    ToolResultAccepted,
    ToolResultAck,
    UnsubscribeAck,
    UsageList,
)
from engine.protocol.tools import ToolResultBody, ToolResultRequest

# Client → server events: (request, success ack). Every ack may also be an ErrorAck.
CLIENT_EVENTS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "execute": (ExecuteRequest, ExecuteAck),
    "subscribe": (SubscribeRequest, SubscribeAck),
    "unsubscribe": (TaskRef, UnsubscribeAck),
    "cancel": (TaskRef, CancelAck),
    "tool_result": (ToolResultRequest, ToolResultAck),
}
SERVER_EVENTS: dict[str, type[BaseModel]] = {
    "task_chunk": TaskChunk,
    "task_tool_call": TaskToolCall,
    "task_reasoning": TaskReasoning,
    "task_done": TaskDone,
    "server_draining": ServerDraining,
    "session_ended": SessionEnded,
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
    "POST /v1/tasks/{id}/tool_results": (ToolResultBody, ToolResultAccepted),
    "GET /v1/runs/{id}": (None, RunView),
    "GET /v1/me": (None, Me),
    "POST /v1/keys": (NewKeyRequest, KeyCreated),
    "GET /v1/keys": (None, KeyList),
    "DELETE /v1/keys/{id}": (None, None),
    "GET /v1/usage": (None, UsageList),
    **LIBRARY_ROUTES,  # prompts, builtins, orgs, projects, variables
    **GALLERY_ROUTES,  # public templates and forks
    **AGENT_ROUTES,  # agents, agent templates, executions
    **MEMBER_ROUTES,  # removing org and project members
    "PUT /v1/me/provider-keys/{provider}": (ProviderKeyRequest, ProviderKeyStored),
    "GET /v1/me/provider-keys": (None, ProviderKeyList),
    "DELETE /v1/me/provider-keys/{provider}": (None, None),
    **HISTORY_ROUTES,  # conversations, executions, prompt statistics
    # OpenAI's dialect: answers and errors in OpenAI's shapes (docs/protocol.md)
    "POST /v1/chat/completions": (ChatCompletionRequest, None),
    "GET /v1/models": (None, None),
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
