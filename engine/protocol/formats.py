"""`settings.response_format`: the answer as text, any JSON object, or JSON matching a schema.

The adapters map it onto each provider's own mechanism (docs/providers.md); after the answer
the output validations check it (`format_validations`), so a non-JSON answer is flagged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from engine.prompts.validation import checked_schema

_SPEC_KEYS = {"name", "description", "schema", "strict"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextFormat(_Strict):
    type: Literal["text"]


class JsonObjectFormat(_Strict):
    type: Literal["json_object"]


class JsonSchemaSpec(_Strict):
    """OpenAI's `json_schema` object: a name, the schema, and whether it is strict."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    # `schema` would shadow a BaseModel attribute: the field is `schema_`, the key `schema`.
    schema_: dict[str, Any] = Field(alias="schema")
    strict: StrictBool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        return checked_schema(schema)


class JsonSchemaFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


def format_kind(settings: dict[str, Any]) -> str:
    """`text`, `json_object` or `json_schema` (`text` when no format is set)."""
    fmt = settings.get("response_format")
    return str(fmt["type"]) if isinstance(fmt, dict) else "text"


def format_schema(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema of a `json_schema` format, else None."""
    fmt = settings.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    schema: dict[str, Any] = fmt["json_schema"]["schema"]
    return schema


def format_validations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The output validations a format asks for: a JSON object, or JSON matching the schema."""
    kind = format_kind(settings)
    if kind == "json_object":
        return [{"type": "json_schema", "schema": {"type": "object"}}]
    schema = format_schema(settings)
    return [] if schema is None else [{"type": "json_schema", "schema": schema}]
