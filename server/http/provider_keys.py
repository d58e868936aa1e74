"""`/v1/me/provider-keys`: a user's own provider keys (stored encrypted, shown as last4)."""

from __future__ import annotations

from aiohttp import web

from engine.protocol.requests import ProviderKeyRequest
from server.http.requests import body_as, current_user
from server.state import ENGINE

routes = web.RouteTableDef()


@routes.put("/v1/me/provider-keys/{provider}")
async def put_provider_key(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await body_as(request, ProviderKeyRequest)
    stored = await request.app[ENGINE].provider_keys.store(
        user.id, request.match_info["provider"], body.key
    )
    return web.json_response(stored)


@routes.get("/v1/me/provider-keys")
async def list_provider_keys(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"items": await request.app[ENGINE].provider_keys.list(user.id)})


@routes.delete("/v1/me/provider-keys/{provider}")
async def delete_provider_key(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[ENGINE].provider_keys.delete(user.id, request.match_info["provider"])
    return web.Response(status=204)
