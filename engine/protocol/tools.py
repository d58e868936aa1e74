"""Tool calling in the client protocol (docs/tools.md): the tools a request offers, its
tool choice, and a client's answer to one call."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from engine.prompts.validation import checked_schema

MAX_TOOLS = 64
MAX_SCHEMA_BYTES = 32 * 1024
MAX_TOOL_OUTPUT_CHARS = 200_000
MAX_STEPS_LIMIT = 64
ToolName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tool(_Strict):
    """A function the model may call: `parameters` is the JSON Schema of its arguments."""

    name: ToolName
    description: Annotated[str, StringConstraints(max_length=4096)] = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_parameters(value)


class NamedTool(_Strict):
    """`tool_choice: {"name": ...}`: the model must call this tool."""

    name: ToolName


ToolChoice = Literal["auto", "none", "required"] | NamedTool


class ToolResultRequest(_Strict):
    """`tool_result` / `POST /v1/tasks/{id}/tool_results`: the output of one call."""

    task_id: UUID
    call_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    output: Annotated[str, StringConstraints(max_length=MAX_TOOL_OUTPUT_CHARS)]


class ToolResultBody(_Strict):
    """The HTTP body of `POST /v1/tasks/{id}/tool_results` (the task is in the path)."""

    call_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    output: Annotated[str, StringConstraints(max_length=MAX_TOOL_OUTPUT_CHARS)]


def check_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's parameters: a valid JSON Schema of an object, at most MAX_SCHEMA_BYTES, with
    no `$ref` outside itself (nothing is fetched). Raises ValueError naming the rule."""
    if len(json.dumps(schema, separators=(",", ":"))) > MAX_SCHEMA_BYTES:
        raise ValueError(f"the schema is larger than {MAX_SCHEMA_BYTES} bytes")
    if schema.get("type") != "object":
        raise ValueError('the schema must describe an object ("type": "object")')
    return checked_schema(schema)


def check_tools(tools: list[Tool] | None, choice: ToolChoice | None) -> list[dict[str, str]]:
    """Field errors of a request's tools as a whole: names used twice, a `tool_choice`
    without tools or naming a tool that is not offered."""
    errors: list[dict[str, str]] = []
    names = [t.name for t in tools or []]
    for index, name in enumerate(names):
        if name in names[:index]:
            errors.append({"field": f"tools.{index}.name", "message": "name used twice"})
    if choice is not None and not names:
        errors.append({"field": "tool_choice", "message": "tool_choice needs tools"})
    elif isinstance(choice, NamedTool) and choice.name not in names:
        errors.append({"field": "tool_choice.name", "message": "no such tool"})
    return errors


def tool_settings(
    tools: list[Tool] | None, choice: ToolChoice | None, max_steps: int | None, default: int
) -> dict[str, Any]:
    """The request's tools as the settings the adapters read (nothing without tools)."""
    if not tools:
        return {}
    out: dict[str, Any] = {
        "tools": [t.model_dump() for t in tools],
        "max_steps": max_steps or default,
    }
    if choice is not None:
        out["tool_choice"] = choice.model_dump() if isinstance(choice, NamedTool) else choice
    return out
