"""HTTP routes of orgs, projects, members and scoped variables (docs/protocol.md)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from engine.errors import InvalidRequest
from engine.prompts import scopes, teams
from engine.prompts.models import MemberAdd, OrgCreate, VariableSet
from engine.prompts.template import PLACEHOLDER
from server.http.prompts import page_limit
from server.http.requests import body_as, current_user, path_uuid
from server.state import POOL, SETTINGS

routes = web.RouteTableDef()


@routes.post("/v1/orgs")
async def create_org(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await body_as(request, OrgCreate)
    cap = request.app[SETTINGS].max_orgs_per_user
    org_id = await scopes.create_org(request.app[POOL], user.id, body.name, cap)
    return web.json_response({"id": str(org_id), "name": body.name}, status=201)


@routes.get("/v1/orgs")
async def list_orgs(request: web.Request) -> web.Response:
    user = await current_user(request)
    cursor = request.query.get("cursor") or None
    page = await teams.list_orgs(request.app[POOL], user.id, page_limit(request), cursor)
    return web.json_response(page)


def _org_list(lister: Any) -> Any:
    """A handler of `GET /v1/orgs/{id}/<list>`: members of the org only."""

    async def handler(request: web.Request) -> web.Response:
        user = await current_user(request)
        org_id = path_uuid(request.match_info["id"], "organization")
        cursor = request.query.get("cursor") or None
        page = await lister(request.app[POOL], user.id, org_id, page_limit(request), cursor)
        return web.json_response(page)

    return handler


for _what, _lister in (
    ("projects", teams.list_projects),
    ("members", teams.list_members),
    ("invitations", teams.list_org_invitations),
):
    routes.get(f"/v1/orgs/{{id}}/{_what}")(_org_list(_lister))


@routes.post("/v1/orgs/{id}/members")
async def add_org_member(request: web.Request) -> web.Response:
    user = await current_user(request)
    org_id = path_uuid(request.match_info["id"], "organization")
    body = await body_as(request, MemberAdd)
    await scopes.add_org_member(request.app[POOL], user.id, org_id, body)
    return web.json_response({"user_id": str(body.user_id), "role": body.role}, status=202)


@routes.post("/v1/orgs/{id}/projects")
async def create_project(request: web.Request) -> web.Response:
    user = await current_user(request)
    org_id = path_uuid(request.match_info["id"], "organization")
    body = await body_as(request, OrgCreate)
    project_id = await scopes.create_project(request.app[POOL], user.id, org_id, body.name)
    return web.json_response(
        {"id": str(project_id), "org_id": str(org_id), "name": body.name}, status=201
    )


@routes.post("/v1/projects/{id}/members")
async def add_project_member(request: web.Request) -> web.Response:
    user = await current_user(request)
    project_id = path_uuid(request.match_info["id"], "project")
    body = await body_as(request, MemberAdd)
    await scopes.add_project_member(request.app[POOL], user.id, project_id, body)
    return web.json_response({"user_id": str(body.user_id), "role": body.role}, status=202)


@routes.get("/v1/me/invitations")
async def list_invitations(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response(await scopes.list_invitations(request.app[POOL], user.id, 200))


@routes.post("/v1/invitations/{id}/accept")
async def accept_invitation(request: web.Request) -> web.Response:
    user = await current_user(request)
    invitation_id = path_uuid(request.match_info["id"], "invitation")
    return web.json_response(
        await scopes.accept_invitation(request.app[POOL], user.id, invitation_id)
    )


def _scope(request: web.Request) -> tuple[str, UUID | None]:
    """(scope, owner id) from the route: /v1/me, /v1/orgs/{id} or /v1/projects/{id}."""
    kind = request.match_info.get("kind", "me")
    if kind == "me":
        return "user", None
    scope = "org" if kind == "orgs" else "project"
    return scope, path_uuid(
        request.match_info["id"], "organization" if scope == "org" else "project"
    )


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not PLACEHOLDER.fullmatch("{{" + name + "}}") or len(name) > 200:
        raise InvalidRequest(
            "not a variable name",
            details={
                "errors": [
                    {
                        "field": "name",
                        "message": "letters, digits, _ . - ; starting with a letter or _",
                    }
                ]
            },
        )
    return name


VARIABLES = ["/v1/me/variables", "/v1/{kind:orgs|projects}/{id}/variables"]


async def list_variables(request: web.Request) -> web.Response:
    user = await current_user(request)
    scope, owner = _scope(request)
    page = await scopes.list_variables(
        request.app[POOL],
        user.id,
        scope,
        owner,
        limit=page_limit(request),
        cursor=request.query.get("cursor") or None,
    )
    return web.json_response(page)


async def set_variable(request: web.Request) -> web.Response:
    user = await current_user(request)
    scope, owner = _scope(request)
    name = _name(request)
    body = await body_as(request, VariableSet)
    view = await scopes.set_variable(request.app[POOL], user.id, scope, owner, name, body.value)
    return web.json_response(view)


async def delete_variable(request: web.Request) -> web.Response:
    user = await current_user(request)
    scope, owner = _scope(request)
    await scopes.delete_variable(request.app[POOL], user.id, scope, owner, _name(request))
    return web.Response(status=204)


for _base in VARIABLES:
    routes.get(_base)(list_variables)
    routes.put(_base + "/{name}")(set_variable)
    routes.delete(_base + "/{name}")(delete_variable)
