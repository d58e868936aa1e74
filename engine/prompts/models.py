"""Request bodies of the prompt library (docs/protocol.md "Prompts", "Organizations, projects,
variables") as pydantic models. Everything a saved prompt holds is checked here, when it is
saved: variable definitions, JSON Schemas and regexes. Nothing is checked for the first
time when a prompt runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from engine.prompts.validation import checked_schema
from engine.prompts.variables import type_error
from engine.protocol.requests import Message, ModelName, ModelSettings, VariableValue

VariableName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$", max_length=200)
]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
FUNCTION_REFUSED = (
    "`function` validations (user JavaScript) are refused: no user code runs"
    " on this server; use `json_schema` or `regex`"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class VariableDefinition(_Strict):
    """One template variable of a prompt (seed 002): its type, whether it is required,
    its default and options."""

    name: VariableName
    type: Literal["string", "number", "boolean", "enum"] = "string"
    required: StrictBool = False
    default: VariableValue | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    options: list[Annotated[str, StringConstraints(max_length=1000)]] | None = Field(
        None, min_length=1, max_length=200
    )

    @model_validator(mode="after")
    def _consistent(self) -> VariableDefinition:
        if self.type == "enum" and not self.options:
            raise ValueError(f"variable {self.name!r}: an enum needs `options`")
        if self.type != "enum" and self.options is not None:
            raise ValueError(f"variable {self.name!r}: only an enum has `options`")
        if self.default is not None:
            problem = type_error(self.model_dump(), self.default)
            if problem:
                raise ValueError(f"variable {self.name!r}: default {problem}")
        return self


class JsonSchemaValidation(_Strict):
    """The final text (or its first ```json block) must be JSON matching `schema`."""

    type: Literal["json_schema"]
    json_schema: dict[str, Any] = Field(alias="schema")

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        return checked_schema(schema)


class RegexValidation(_Strict):
    """The final text must contain a match of `pattern` (the `regex` package's syntax)."""

    type: Literal["regex"]
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=2000)]

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, pattern: str) -> str:
        try:
            regex.compile(pattern)
        except (regex.error, ValueError, OverflowError) as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern


Validation = Annotated[JsonSchemaValidation | RegexValidation, Field(discriminator="type")]


def _refuse_functions(items: Any) -> Any:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and str(item.get("type", "")).lower() == "function":
                raise ValueError(FUNCTION_REFUSED)
    return items


def _unique_names(variables: list[VariableDefinition] | None) -> None:
    names = [v.name for v in variables or []]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError("variables defined twice: " + ", ".join(repeated))


class PromptFields(_Strict):
    """What a prompt body may hold; every field optional (a PATCH)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    tags: list[Tag] | None = Field(None, max_length=50)
    messages: list[Message] | None = Field(None, min_length=1, max_length=100)
    model: ModelName | None = None
    settings: ModelSettings | None = None
    variables: list[VariableDefinition] | None = Field(None, max_length=200)
    validations: list[Validation] | None = Field(None, max_length=20)

    @field_validator("validations", mode="before")
    @classmethod
    def _no_user_code(cls, items: Any) -> Any:
        return _refuse_functions(items)

    @model_validator(mode="after")
    def _names(self) -> PromptFields:
        _unique_names(self.variables)
        return self


class PromptCreate(PromptFields):
    """`POST /v1/prompts`: name and messages are required. `org_id` or `project_id` (at most
    one) makes it a team's prompt; only an admin of that team may create one."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    messages: list[Message] = Field(min_length=1, max_length=100)
    org_id: UUID | None = None
    project_id: UUID | None = None


class PromptUpdate(PromptFields):
    """`PATCH /v1/prompts/{id}`: any fields plus a change log; writes a new version."""

    change_log: Annotated[str, StringConstraints(max_length=5000)] = ""


class OrgCreate(_Strict):
    """`POST /v1/orgs` and `POST /v1/orgs/{id}/projects`."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class MemberAdd(_Strict):
    """`POST /v1/orgs/{id}/members` and `POST /v1/projects/{id}/members`."""

    user_id: UUID
    role: Literal["admin", "member"] = "member"


class VariableSet(_Strict):
    """`PUT .../variables/{name}`: stored as text."""

    value: Annotated[str, StringConstraints(max_length=100_000)] | int | float | bool


def validation_specs(items: list[JsonSchemaValidation | RegexValidation]) -> list[dict[str, Any]]:
    """The stored form of validations: `{type, schema}` / `{type, pattern}`."""
    return [v.model_dump(by_alias=True) for v in items]
