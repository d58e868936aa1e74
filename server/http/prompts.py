"""HTTP routes of the prompt library (docs/protocol.md "Prompts"): parse, call the engine."""

from __future__ import annotations

from aiohttp import web

from engine.errors import InvalidRequest, NotFound
from engine.prompts import library
from engine.prompts.catalog import builtin_summaries
from engine.prompts.models import PromptCreate, PromptUpdate
from engine.protocol.requests import decode
from server.http.requests import current_user, json_body, path_uuid
from server.state import POOL, SETTINGS

routes = web.RouteTableDef()


def page_limit(request: web.Request) -> int:
    """`limit` of a list route: default 50, at most 200."""
    raw = request.query.get("limit", "50")
    try:
        limit = int(raw)
        if not 1 <= limit <= 200:
            raise ValueError
    except ValueError:
        raise InvalidRequest(
            "limit must be an integer from 1 to 200",
            details={"errors": [{"field": "limit", "message": "an integer from 1 to 200"}]},
        ) from None
    return limit


def version_number(request: web.Request) -> int:
    """The `{n}` of a version route; `not_found` for one that cannot exist."""
    try:
        version = int(request.match_info["n"])
        if not 1 <= version <= 2**31 - 1:
            raise ValueError
    except ValueError:
        raise NotFound("version not found") from None
    return version


async def _body(request: web.Request) -> object:
    return await json_body(request)


@routes.post("/v1/prompts")
async def create_prompt(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = decode(
        PromptCreate, await _body(request), max_bytes=request.app[SETTINGS].max_payload_bytes
    )
    return web.json_response(await library.create(request.app[POOL], user.id, body), status=201)


@routes.get("/v1/prompts")
async def list_prompts(request: web.Request) -> web.Response:
    user = await current_user(request)
    query = request.query
    page = await library.list_page(
        request.app[POOL],
        user.id,
        status=query.get("status") or None,
        tag=query.get("tag") or None,
        text=query.get("q") or None,
        owner=query.get("owner") or None,
        limit=page_limit(request),
        cursor=query.get("cursor") or None,
    )
    return web.json_response(page)


@routes.get("/v1/prompts/{id}")
async def get_prompt(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    return web.json_response(await library.get(request.app[POOL], user.id, prompt_id))


@routes.patch("/v1/prompts/{id}")
async def update_prompt(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    body = decode(
        PromptUpdate, await _body(request), max_bytes=request.app[SETTINGS].max_payload_bytes
    )
    return web.json_response(await library.update(request.app[POOL], user.id, prompt_id, body))


@routes.get("/v1/prompts/{id}/versions")
async def list_versions(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    page = await library.versions(
        request.app[POOL],
        user.id,
        prompt_id,
        limit=page_limit(request),
        cursor=request.query.get("cursor") or None,
    )
    return web.json_response(page)


@routes.get("/v1/prompts/{id}/versions/{n}")
async def get_version(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    view = await library.get(request.app[POOL], user.id, prompt_id, version_number(request))
    return web.json_response(view)


@routes.post("/v1/prompts/{id}/versions/{n}/publish")
async def publish_version(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    view = await library.publish(request.app[POOL], user.id, prompt_id, version_number(request))
    return web.json_response(view)


@routes.post("/v1/prompts/{id}/archive")
async def archive_prompt(request: web.Request) -> web.Response:
    user = await current_user(request)
    prompt_id = path_uuid(request.match_info["id"], "prompt")
    return web.json_response(await library.archive(request.app[POOL], user.id, prompt_id))


@routes.delete("/v1/prompts/{id}")
async def delete_prompt(request: web.Request) -> web.Response:
    user = await current_user(request)
    await library.delete(request.app[POOL], user.id, path_uuid(request.match_info["id"], "prompt"))
    return web.Response(status=204)


@routes.get("/v1/builtins")
async def list_builtins(request: web.Request) -> web.Response:
    """docs/protocol.md's `{items: [{id, name, description, variables}]}`, the whole list."""
    await current_user(request)
    return web.json_response({"items": await builtin_summaries(request.app[POOL])})
