"""Bodies and answers of the agent routes (docs/protocol.md "Agents")."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from engine.prompts.models import VariableDefinition
from engine.protocol.requests import ExecuteRequest, ModelName, ModelSettings, VariableValue
from engine.protocol.responses import ExecutionAccepted
from engine.protocol.tools import MAX_TOOLS, Tool

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Values = dict[Annotated[str, StringConstraints(max_length=200)], VariableValue]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentTemplateCreate(_Strict):
    """`POST /v1/agent-templates`: a system prompt with `{{variables}}`, their definitions,
    a default model and settings; `org_id` makes it an org's (admins only)."""

    name: Name
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    system_prompt: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    variables: list[VariableDefinition] = Field(default_factory=list, max_length=200)
    model: ModelName | None = None
    settings: ModelSettings | None = None
    tools: list[Tool] | None = Field(None, min_length=1, max_length=MAX_TOOLS)
    org_id: UUID | None = None


class AgentCreate(_Strict):
    """`POST /v1/agents`: an instance of a template the caller may read."""

    template_id: UUID
    name: Name
    variables: Values = Field(default_factory=dict)
    model: ModelName | None = None
    org_id: UUID | None = None


class AgentUpdate(_Strict):
    """`PATCH /v1/agents/{id}`: fields sent replace the agent's (`model: null` clears it)."""

    name: Name | None = None
    variables: Values | None = None
    model: ModelName | None = None


class AgentTemplateView(_View):
    id: str
    org_id: str | None
    name: str
    description: str
    system_prompt: str
    variables: list[dict[str, Any]]
    model: str | None
    settings: dict[str, Any]
    tools: list[dict[str, Any]]
    role: Literal["admin", "member"]
    created_at: str


class AgentTemplatePage(_View):
    """`GET /v1/agent-templates?limit=&cursor=`."""

    items: list[AgentTemplateView]
    next_cursor: str | None


class AgentView(_View):
    id: str
    template_id: str
    org_id: str | None
    name: str
    variables: dict[str, Any]
    model: str | None
    role: Literal["admin", "member"]
    execution_count: int
    last_executed_at: str | None
    average_execution_ms: int | None
    created_at: str
    updated_at: str


class AgentPage(_View):
    """`GET /v1/agents?limit=&cursor=`."""

    items: list[AgentView]
    next_cursor: str | None


class AgentExecutionView(_View):
    """One execution of an agent: a conversation turn, named by its first task; with tools,
    the tool continuations after it are part of it (docs/prompts.md "Agents")."""

    task_id: str
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    model: str
    started_at: str | None
    completed_at: str | None
    tokens_used: int | None
    execution_ms: int | None
    model_calls: int
    tools_called: list[str]
    result: str | None
    error: dict[str, Any] | None


class AgentExecutionPage(_View):
    """`GET /v1/agents/{id}/executions?limit=&cursor=`."""

    items: list[AgentExecutionView]
    next_cursor: str | None


AGENT_ROUTES: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "POST /v1/agent-templates": (AgentTemplateCreate, AgentTemplateView),
    "GET /v1/agent-templates": (None, AgentTemplatePage),
    "GET /v1/agent-templates/{id}": (None, AgentTemplateView),
    "POST /v1/agents": (AgentCreate, AgentView),
    "GET /v1/agents": (None, AgentPage),
    "GET /v1/agents/{id}": (None, AgentView),
    "PATCH /v1/agents/{id}": (AgentUpdate, AgentView),
    "DELETE /v1/agents/{id}": (None, None),
    "GET /v1/agents/{id}/executions": (None, AgentExecutionPage),
    "POST /v1/agents/{id}/run": (ExecuteRequest, ExecutionAccepted),
}

# Removing members (engine/prompts/members.py): answered 204 without a body.
MEMBER_ROUTES: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "DELETE /v1/orgs/{id}/members/{user_id}": (None, None),
    "DELETE /v1/projects/{id}/members/{user_id}": (None, None),
}
