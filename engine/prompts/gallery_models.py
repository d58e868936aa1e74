"""Bodies and answers of the template gallery's routes (docs/protocol.md "Templates")."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, StringConstraints

from engine.prompts.views import PromptView

Category = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TemplatePublish(_Strict):
    """`POST /v1/prompts/{id}/versions/{n}/template`."""

    category: Category = "general"
    is_default: bool = False


class ForkBody(_Strict):
    """`POST /v1/templates/{id}/fork`: into the caller's library, or an org's or project's
    (admins only); `name` defaults to the template's."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    org_id: UUID | None = None
    project_id: UUID | None = None


class TemplateView(_View):
    """A public template: the published version's content under the prompt's name."""

    id: str
    version: int
    name: str
    description: str
    tags: list[str]
    category: str
    is_default: bool
    messages: list[dict[str, str]]
    model: str | None
    settings: dict[str, Any]
    variables: list[dict[str, Any]]
    published_at: str


class TemplatePage(_View):
    """`GET /v1/templates?q=&tag=&category=&limit=&cursor=`."""

    items: list[TemplateView]
    next_cursor: str | None


class TemplateStats(TemplateView):
    """`GET /v1/prompts/{id}/template`, for those who may write the prompt: whether it is
    public, how often it was forked, and how often its forks ran."""

    is_public: bool
    fork_count: int
    run_count: int


GALLERY_ROUTES: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "POST /v1/prompts/{id}/versions/{n}/template": (TemplatePublish, TemplateStats),
    "GET /v1/prompts/{id}/template": (None, TemplateStats),
    "DELETE /v1/prompts/{id}/template": (None, None),
    "GET /v1/templates": (None, TemplatePage),
    "GET /v1/templates/{id}": (None, TemplateView),
    "POST /v1/templates/{id}/fork": (ForkBody, PromptView),
}
