"""HTTP routes of the template gallery (docs/protocol.md "Templates"): parse, call the engine."""

from __future__ import annotations

from aiohttp import web

from db.templates import GalleryFilter
from engine.prompts import gallery
from engine.prompts.gallery_models import ForkBody, TemplatePublish
from engine.protocol.requests import decode
from server.http.prompts import page_limit, version_number
from server.http.requests import current_user, json_body, path_uuid
from server.state import POOL, SETTINGS

routes = web.RouteTableDef()


@routes.post("/v1/prompts/{id}/versions/{n}/template")
async def publish_template(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    raw = await json_body(request)
    body = decode(TemplatePublish, raw, max_bytes=request.app[SETTINGS].max_payload_bytes)
    view = await gallery.publish(
        request.app[POOL], user.id, prompt_id, version_number(request), body
    )
    return web.json_response(view)


@routes.get("/v1/prompts/{id}/template")
async def template_stats(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    return web.json_response(await gallery.stats(request.app[POOL], user.id, prompt_id))


@routes.delete("/v1/prompts/{id}/template")
async def unpublish_template(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    await gallery.unpublish(request.app[POOL], user.id, prompt_id)
    return web.Response(status=204)


@routes.get("/v1/templates")
async def list_templates(request: web.Request) -> web.Response:
    await current_user(request)
    query = request.query
    where = GalleryFilter(
        text=query.get("q") or None,
        tag=query.get("tag") or None,
        category=query.get("category") or None,
    )
    page = await gallery.gallery(
        request.app[POOL],
        where,
        limit=page_limit(request),
        cursor=query.get("cursor") or None,
    )
    return web.json_response(page)


@routes.get("/v1/templates/{id}")
async def get_template(request: web.Request) -> web.Response:
    await current_user(request)
    template_id = path_uuid(request.match_info["id"], "template")
    return web.json_response(await gallery.get(request.app[POOL], template_id))


@routes.post("/v1/templates/{id}/fork")
async def fork_template(request: web.Request) -> web.Response:
    user = await current_user(request)
    template_id = path_uuid(request.match_info["id"], "template")
    raw = await json_body(request)
    body = decode(ForkBody, raw, max_bytes=request.app[SETTINGS].max_payload_bytes)
    view = await gallery.fork(request.app[POOL], user.id, template_id, body)
    return web.json_response(view, status=201)
