"""Payloads of the client protocol (docs/protocol.md) as pydantic models, and their decoding."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.errors import InvalidRequest, PayloadTooLarge
from engine.protocol.content import (
    CallId,
    Content,
    MessageToolCall,
    check_message_shape,
)
from engine.protocol.formats import ResponseFormat
from engine.protocol.tools import MAX_STEPS_LIMIT, MAX_TOOLS, Tool, ToolChoice, ToolName

Role = Literal["system", "user", "assistant", "tool"]
MODEL_NAME = re.compile(r"^[a-z][a-z0-9_-]*/[^\s/][^\s]*$")


def _model_name(value: str) -> str:
    # A message that says how to write one, not the pattern.
    if not MODEL_NAME.fullmatch(value):
        raise PydanticCustomError(
            "model_name", "model must be provider/model, e.g. openai/gpt-4o-mini"
        )
    return value


ModelName = Annotated[
    str,
    StringConstraints(max_length=200),
    AfterValidator(_model_name),
    WithJsonSchema({"type": "string", "pattern": MODEL_NAME.pattern, "maxLength": 200}),
]
VariableValue = Annotated[str, StringConstraints(max_length=100_000)] | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextMessage(_Strict):
    """A message of a saved prompt: text only (its content is a template)."""

    role: Literal["system", "user", "assistant"]
    content: Annotated[str, StringConstraints(max_length=1_000_000)]


class ThinkingBlock(BaseModel):
    """A provider's thinking kept with an assistant turn that asked for tools (Anthropic's
    signed `thinking` or `redacted_thinking` block, Gemini's `thought_signature` of a call),
    sent back as it came."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal["thinking", "redacted_thinking", "thought_signature"]


class Message(_Strict):
    """One message: text, or parts with images (docs/protocol.md "Images"); an assistant's
    tool calls (with the thinking blocks to send back with them) and a tool's result as
    docs/tools.md stores them."""

    role: Role
    content: Content
    tool_calls: list[MessageToolCall] | None = Field(None, min_length=1, max_length=MAX_TOOLS)
    tool_call_id: CallId | None = Field(None, validate_default=True)
    name: ToolName | None = Field(None, validate_default=True)
    thinking: list[ThinkingBlock] | None = Field(None, min_length=1, max_length=64)

    @field_validator("tool_call_id", "name")
    @classmethod
    def _tool_fields(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Each error names its own field (`messages.0.name`), as an unknown key's would.
        is_tool = info.data.get("role") == "tool"
        if value is not None and not is_tool:
            raise ValueError(f"{info.field_name} is taken on tool messages only")
        if value is None and is_tool:
            raise ValueError(f"a tool message needs {info.field_name}")
        return value

    @model_validator(mode="after")
    def _by_role(self) -> Message:
        check_message_shape(self.role, self.content, self.tool_calls, self.tool_call_id, self.name)
        if self.thinking is not None and not self.tool_calls:
            raise ValueError("thinking is taken on an assistant message with tool_calls only")
        return self

    def neutral(self) -> dict[str, Any]:
        """The message as the engine stores and sends it (unset fields left out)."""
        return self.model_dump(exclude_none=True)


class ReasoningSettings(_Strict):
    """Ask the model to reason before it answers (docs/protocol.md "Reasoning"): `effort`,
    a thinking `budget_tokens`, either or both; `{}` asks for the provider's default. Each
    provider takes what it has a place for and refuses the rest (`invalid_request`)."""

    effort: Literal["low", "medium", "high"] | None = None
    budget_tokens: StrictInt | None = Field(None, ge=1, le=1_000_000)


class ModelSettings(_Strict):
    """Settings passed to the provider. Unknown keys are refused so typos do not pass silently."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: StrictInt | None = Field(None, ge=1, le=1_000_000)
    stop: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(None, max_length=8)
    seed: StrictInt | None = Field(None, ge=-(2**63), le=2**63 - 1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    tokens_per_second: float | None = Field(None, ge=0, le=1_000_000)
    # `provider/model` names tried in order when the model is unavailable
    fallbacks: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        None, max_length=5
    )
    # `simulated/*` with tools: ask for this many calls at once (docs/tools.md)
    simulate_tool_calls: StrictInt | None = Field(None, ge=0, le=8)
    # the answer as text, any JSON object, or JSON matching a schema (docs/providers.md)
    response_format: ResponseFormat | None = None
    # reasoning before the answer, streamed apart from it (docs/protocol.md "Reasoning")
    reasoning: ReasoningSettings | None = None

    def merged_over(self, base: dict[str, Any]) -> dict[str, Any]:
        """These settings over `base`, dropping unset values."""
        out = dict(base)
        out.update(self.model_dump(exclude_none=True, by_alias=True))
        return out


class Scope(_Strict):
    org_id: UUID | None = None
    project_id: UUID | None = None


class ExecuteRequest(_Strict):
    prompt_id: UUID | None = None
    agent_id: UUID | None = None  # run an agent (docs/prompts.md "Agents")
    builtin: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    version: StrictInt | None = Field(None, ge=1, le=2**31 - 1)
    messages: list[Message] = Field(default_factory=list)
    variables: dict[Annotated[str, StringConstraints(max_length=200)], VariableValue] = Field(
        default_factory=dict
    )
    run_id: UUID | None = None
    track_in_runs: StrictBool = True
    model: ModelName | None = None
    settings: ModelSettings = Field(default_factory=lambda: ModelSettings())
    scope: Scope | None = None
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    broker_values: dict[str, Any] = Field(default_factory=dict)
    # queued work starts in priority order; default by tier: free low, others normal
    priority: Literal["low", "normal", "high"] | None = None
    # functions the model may call (docs/tools.md), which of them, and how many model
    # calls the conversation may take (default MAX_TOOL_STEPS)
    tools: list[Tool] | None = Field(None, min_length=1, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    max_steps: StrictInt | None = Field(None, ge=1, le=MAX_STEPS_LIMIT)
    # who continues after tool calls: the server (a continuation waits for `tool_result`s)
    # or the client (the task ends with its calls; the next execute carries the results)
    tool_steps: Literal["server", "client"] | None = None


class RunUpdate(_Strict):
    """`PATCH /v1/runs/{id}`: a new title and/or archived flag; absent fields stay."""

    title: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    archived: StrictBool | None = None


class ProviderKeyRequest(_Strict):
    """`PUT /v1/me/provider-keys/{provider}`: a user's own key for a provider."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class SubscribeRequest(_Strict):
    task_id: UUID
    after_seq: StrictInt = Field(0, ge=0)


class TaskRef(_Strict):
    task_id: UUID


class NewKeyRequest(_Strict):
    """`POST /v1/keys`."""

    name: Annotated[str, StringConstraints(max_length=200)] = ""


M = TypeVar("M", bound=BaseModel)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as `{field, message}` pairs, without echoing the input back."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        # union tags (engine.protocol.content) are no fields
        path = [str(part) for part in err["loc"] if not str(part).startswith("~")]
        field = ".".join(path) or "(payload)"
        out.append({"field": field, "message": err["msg"]})
    return out


def decode(model: type[M], payload: Any, *, max_bytes: int | None = None) -> M:
    """Validate a decoded JSON payload against `model`, raising our stable errors."""
    if max_bytes is not None and _size(payload) > max_bytes:
        raise PayloadTooLarge(
            f"payload is larger than {max_bytes} bytes",
            details={"limit": "payload_bytes", "max": max_bytes},
        )
    if not isinstance(payload, dict):
        raise InvalidRequest(
            "payload must be a JSON object",
            details={"errors": [{"field": "(payload)", "message": "expected an object"}]},
        )
    unstorable = unstorable_values(payload)
    if unstorable:
        raise InvalidRequest(
            "payload holds values that cannot be stored", details={"errors": unstorable}
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidRequest("invalid payload", details={"errors": field_errors(exc)}) from None


def unstorable_values(payload: Any, limit: int = 20) -> list[dict[str, str]]:
    """Field errors for text with NUL characters and non-finite numbers (JSON cannot hold
    them in Postgres). Iterative, so deep nesting cannot exhaust the stack."""
    errors: list[dict[str, str]] = []
    stack: list[tuple[str, Any]] = [("", payload)]
    while stack and len(errors) < limit:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                errors.append({"field": path or "(payload)", "message": "NUL character"})
        elif isinstance(value, float):
            if not math.isfinite(value):
                errors.append({"field": path or "(payload)", "message": "not a finite number"})
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    errors.append({"field": path or "(payload)", "message": "NUL in a key"})
                stack.append((f"{path}.{key}" if path else str(key), item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", item) for i, item in enumerate(value))
    return errors


def _size(payload: Any) -> int:
    if isinstance(payload, bytes | bytearray):
        return len(payload)
    if isinstance(payload, str):
        return len(payload.encode())
    try:
        return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError, RecursionError):
        return 0
