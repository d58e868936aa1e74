"""HTTP routes of agents and agent templates (docs/protocol.md "Agents"): parse, call the
engine. `POST /v1/agents/{id}/run` is `POST /v1/executions` with the path's `agent_id`."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web

from engine.agents import library
from engine.agents.models import AgentCreate, AgentTemplateCreate, AgentUpdate
from engine.protocol.requests import ExecuteRequest, decode
from server.http.prompts import page_limit
from server.http.requests import body_as, current_user, json_body, path_uuid
from server.state import ENGINE, POOL, SETTINGS

routes = web.RouteTableDef()
M = TypeVar("M", AgentTemplateCreate, AgentCreate, AgentUpdate)


async def _decode(request: web.Request, model: type[M]) -> M:
    raw = await json_body(request)
    return decode(model, raw, max_bytes=request.app[SETTINGS].max_payload_bytes)


@routes.post("/v1/agent-templates")
async def create_template(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await _decode(request, AgentTemplateCreate)
    view = await library.create_template(request.app[POOL], user.id, body)
    return web.json_response(view, status=201)


@routes.get("/v1/agent-templates")
async def list_templates(request: web.Request) -> web.Response:
    user = await current_user(request)
    page = await library.list_templates(
        request.app[POOL],
        user.id,
        limit=page_limit(request),
        cursor=request.query.get("cursor") or None,
    )
    return web.json_response(page)


@routes.get("/v1/agent-templates/{id}")
async def get_template(request: web.Request) -> web.Response:
    user = await current_user(request)
    template_id = path_uuid(request.match_info["id"], "agent template")
    return web.json_response(await library.get_template(request.app[POOL], user.id, template_id))


@routes.post("/v1/agents")
async def create_agent(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await _decode(request, AgentCreate)
    view = await library.create_agent(request.app[POOL], user.id, body)
    return web.json_response(view, status=201)


@routes.get("/v1/agents")
async def list_agents(request: web.Request) -> web.Response:
    user = await current_user(request)
    page = await library.list_agents(
        request.app[POOL],
        user.id,
        limit=page_limit(request),
        cursor=request.query.get("cursor") or None,
    )
    return web.json_response(page)


@routes.get("/v1/agents/{id}")
async def get_agent(request: web.Request) -> web.Response:
    user = await current_user(request)
    agent_id = path_uuid(request.match_info["id"], "agent")
    return web.json_response(await library.get_agent(request.app[POOL], user.id, agent_id))


@routes.patch("/v1/agents/{id}")
async def update_agent(request: web.Request) -> web.Response:
    user = await current_user(request)
    agent_id = path_uuid(request.match_info["id"], "agent")
    body = await _decode(request, AgentUpdate)
    view = await library.update_agent(request.app[POOL], user.id, agent_id, body)
    return web.json_response(view)


@routes.delete("/v1/agents/{id}")
async def delete_agent(request: web.Request) -> web.Response:
    user = await current_user(request)
    agent_id = path_uuid(request.match_info["id"], "agent")
    await library.delete_agent(request.app[POOL], user.id, agent_id)
    return web.Response(status=204)


@routes.get("/v1/agents/{id}/executions")
async def list_executions(request: web.Request) -> web.Response:
    user = await current_user(request)
    agent_id = path_uuid(request.match_info["id"], "agent")
    page = await library.executions(
        request.app[POOL],
        user.id,
        agent_id,
        limit=page_limit(request),
        cursor=request.query.get("cursor") or None,
    )
    return web.json_response(page)


@routes.post("/v1/agents/{id}/run")
async def run_agent(request: web.Request) -> web.Response:
    user = await current_user(request)
    agent_id = path_uuid(request.match_info["id"], "agent")
    req = await body_as(request, ExecuteRequest)
    result = await request.app[ENGINE].execute(user, req.model_copy(update={"agent_id": agent_id}))
    return web.json_response(result.to_dict(), status=202)
