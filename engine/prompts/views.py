"""What the prompt-library routes answer, as pydantic models (extra keys forbidden), and the
map of those routes for the typed protocol (engine.protocol.responses, `GET /v1/protocol.json`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from engine.prompts.models import MemberAdd, OrgCreate, PromptCreate, PromptUpdate, VariableSet


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForkSource(_View):
    """Where a forked prompt was copied from: the template's prompt (null once that prompt is
    deleted) and version."""

    prompt_id: str | None
    version: int


class PromptView(_View):
    """A prompt with one version's body: `POST`/`GET`/`PATCH /v1/prompts/{id}`, publish,
    archive, `GET /v1/prompts/{id}/versions/{n}`."""

    id: str
    name: str
    description: str
    tags: list[str]
    status: Literal["draft", "published", "archived"]
    version: int
    latest_version: int
    published_version: int | None
    messages: list[dict[str, str]]
    model: str | None
    settings: dict[str, Any]
    variables: list[dict[str, Any]]
    validations: list[dict[str, Any]]
    change_log: str
    org_id: str | None
    project_id: str | None
    role: Literal["admin", "member"]
    forked_from: ForkSource | None
    created_at: str
    updated_at: str


class PromptPage(_View):
    """`GET /v1/prompts?status=&tag=&q=&owner=&limit=&cursor=`."""

    items: list[PromptView]
    next_cursor: str | None


class VersionSummary(_View):
    version: int
    change_log: str
    model: str | None
    created_at: str


class VersionPage(_View):
    """`GET /v1/prompts/{id}/versions`."""

    items: list[VersionSummary]
    next_cursor: str | None


class BuiltinSummary(_View):
    id: str
    name: str
    description: str
    variables: list[dict[str, Any]]


class BuiltinList(_View):
    """`GET /v1/builtins`."""

    items: list[BuiltinSummary]


class OrgCreated(_View):
    """`201` of `POST /v1/orgs`."""

    id: str
    name: str


class ProjectCreated(_View):
    """`201` of `POST /v1/orgs/{id}/projects`."""

    id: str
    org_id: str
    name: str


class MemberView(_View):
    """`202` of `POST /v1/orgs/{id}/members` and `POST /v1/projects/{id}/members`: the user
    is invited (or, if already a member, has the role now); the same answer for an id that
    does not exist."""

    user_id: str
    role: Literal["admin", "member"]


class InvitationView(_View):
    """An open invitation of the caller to an org or a project."""

    id: str
    kind: Literal["org", "project"]
    target_id: str
    name: str
    role: Literal["admin", "member"]
    invited_at: str


class InvitationList(_View):
    """`GET /v1/me/invitations`, oldest first (at most 200)."""

    items: list[InvitationView]


class InvitationAccepted(_View):
    """`200` of `POST /v1/invitations/{id}/accept`: the caller is a member now."""

    kind: Literal["org", "project"]
    target_id: str
    role: Literal["admin", "member"]


class OrgView(_View):
    """One org of the caller, with the caller's role in it."""

    id: str
    name: str
    role: Literal["admin", "member"]
    forked_from: ForkSource | None
    created_at: str


class OrgPage(_View):
    """`GET /v1/orgs`: the caller's orgs, oldest first."""

    items: list[OrgView]
    next_cursor: str | None


class ProjectView(_View):
    id: str
    org_id: str
    name: str
    created_at: str


class ProjectPage(_View):
    """`GET /v1/orgs/{id}/projects`, oldest first."""

    items: list[ProjectView]
    next_cursor: str | None


class OrgMember(_View):
    user_id: str
    email: str | None
    role: Literal["admin", "member"]


class OrgMemberPage(_View):
    """`GET /v1/orgs/{id}/members`, by user id."""

    items: list[OrgMember]
    next_cursor: str | None


class OrgInvitation(_View):
    """An invitation to the org that its user has not accepted yet."""

    id: str
    user_id: str
    email: str | None
    role: Literal["admin", "member"]
    invited_by: str
    invited_at: str


class OrgInvitationPage(_View):
    """`GET /v1/orgs/{id}/invitations`, oldest first."""

    items: list[OrgInvitation]
    next_cursor: str | None


class VariableView(_View):
    """One scoped variable; values are stored as text."""

    name: str
    value: str
    updated_at: str


class VariablePage(_View):
    """`GET /v1/me/variables`, `/v1/orgs/{id}/variables`, `/v1/projects/{id}/variables`."""

    items: list[VariableView]
    next_cursor: str | None


_VARIABLE_BASES = ("/v1/me/variables", "/v1/orgs/{id}/variables", "/v1/projects/{id}/variables")

# "METHOD path" → (request body, success body); `DELETE` routes answer 204 without a body.
LIBRARY_ROUTES: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "POST /v1/prompts": (PromptCreate, PromptView),
    "GET /v1/prompts": (None, PromptPage),
    "GET /v1/prompts/{id}": (None, PromptView),
    "PATCH /v1/prompts/{id}": (PromptUpdate, PromptView),
    "DELETE /v1/prompts/{id}": (None, None),
    "GET /v1/prompts/{id}/versions": (None, VersionPage),
    "GET /v1/prompts/{id}/versions/{n}": (None, PromptView),
    "POST /v1/prompts/{id}/versions/{n}/publish": (None, PromptView),
    "POST /v1/prompts/{id}/archive": (None, PromptView),
    "GET /v1/builtins": (None, BuiltinList),
    "POST /v1/orgs": (OrgCreate, OrgCreated),
    "GET /v1/orgs": (None, OrgPage),
    "GET /v1/orgs/{id}/projects": (None, ProjectPage),
    "GET /v1/orgs/{id}/members": (None, OrgMemberPage),
    "GET /v1/orgs/{id}/invitations": (None, OrgInvitationPage),
    "POST /v1/orgs/{id}/members": (MemberAdd, MemberView),
    "POST /v1/orgs/{id}/projects": (OrgCreate, ProjectCreated),
    "POST /v1/projects/{id}/members": (MemberAdd, MemberView),
    "GET /v1/me/invitations": (None, InvitationList),
    "POST /v1/invitations/{id}/accept": (None, InvitationAccepted),
    **{f"GET {base}": (None, VariablePage) for base in _VARIABLE_BASES},
    **{f"PUT {base}/{{name}}": (VariableSet, VariableView) for base in _VARIABLE_BASES},
    **{f"DELETE {base}/{{name}}": (None, None) for base in _VARIABLE_BASES},
}
