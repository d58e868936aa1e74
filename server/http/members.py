"""HTTP routes that remove members of orgs and projects (docs/protocol.md)."""

from __future__ import annotations

from aiohttp import web

from engine.prompts import members
from server.http.requests import current_user, path_uuid
from server.state import POOL

routes = web.RouteTableDef()


@routes.delete("/v1/orgs/{id}/members/{user_id}")
async def remove_org_member(request: web.Request) -> web.Response:
    user = await current_user(request)
    org_id = path_uuid(request.match_info["id"], "organization")
    target = path_uuid(request.match_info["user_id"], "member")
    await members.remove_org_member(request.app[POOL], user.id, org_id, target)
    return web.Response(status=204)


@routes.delete("/v1/projects/{id}/members/{user_id}")
async def remove_project_member(request: web.Request) -> web.Response:
    user = await current_user(request)
    project_id = path_uuid(request.match_info["id"], "project")
    target = path_uuid(request.match_info["user_id"], "member")
    await members.remove_project_member(request.app[POOL], user.id, project_id, target)
    return web.Response(status=204)
