"""Payloads of the client protocol (PROTOCOL.md) as pydantic models, and their decoding."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from engine.errors import InvalidRequest, PayloadTooLarge

Role = Literal["system", "user", "assistant"]
ModelName = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*/[^\s/][^\s]*$", max_length=200)
]
VariableValue = Annotated[str, StringConstraints(max_length=100_000)] | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    role: Role
    content: Annotated[str, StringConstraints(max_length=1_000_000)]


class ModelSettings(_Strict):
    """Settings passed to the provider. Unknown keys are refused so typos do not pass silently."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    stop: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(None, max_length=8)
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    tokens_per_second: float | None = Field(None, ge=0, le=1_000_000)

    def merged_over(self, base: dict[str, Any]) -> dict[str, Any]:
        """These settings over `base`, dropping unset values."""
        out = dict(base)
        out.update(self.model_dump(exclude_none=True))
        return out


class Scope(_Strict):
    org_id: UUID | None = None
    project_id: UUID | None = None


class ExecuteRequest(_Strict):
    prompt_id: UUID | None = None
    builtin: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    version: int | None = Field(None, ge=1)
    messages: list[Message] = Field(default_factory=list)
    variables: dict[Annotated[str, StringConstraints(max_length=200)], VariableValue] = Field(
        default_factory=dict
    )
    run_id: UUID | None = None
    track_in_runs: bool = True
    model: ModelName | None = None
    settings: ModelSettings = Field(default_factory=lambda: ModelSettings())
    scope: Scope | None = None
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    broker_values: dict[str, Any] = Field(default_factory=dict)


class SubscribeRequest(_Strict):
    task_id: UUID
    after_seq: int = Field(0, ge=0)


class TaskRef(_Strict):
    task_id: UUID


M = TypeVar("M", bound=BaseModel)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as `{field, message}` pairs, without echoing the input back."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in err["loc"]) or "(payload)"
        out.append({"field": field, "message": err["msg"]})
    return out


def decode(model: type[M], payload: Any, *, max_bytes: int | None = None) -> M:
    """Validate a decoded JSON payload against `model`, raising our stable errors."""
    if max_bytes is not None and _size(payload) > max_bytes:
        raise PayloadTooLarge(f"payload is larger than {max_bytes} bytes")
    if not isinstance(payload, dict):
        raise InvalidRequest(
            "payload must be a JSON object",
            details={"errors": [{"field": "(payload)", "message": "expected an object"}]},
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidRequest("invalid payload", details={"errors": field_errors(exc)}) from None


def _size(payload: Any) -> int:
    if isinstance(payload, bytes | bytearray):
        return len(payload)
    if isinstance(payload, str):
        return len(payload.encode())
    try:
        return len(json.dumps(payload, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        return 0
