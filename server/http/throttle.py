"""The HTTP request rate limit: per user on authenticated routes, per client address on the
rest (and for every failed authentication), shared by every node (engine/accounts/ratelimit.py).

Health checks, `/metrics` and the Socket.IO endpoint (capped by server/realtime/handshakes.py) are
not counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from db.users import User
from engine.accounts.ratelimit import RateLimiter
from engine.errors import InvalidRequest
from server.state import ENGINE, REDIS, SETTINGS

LIMITER = web.AppKey("rate_limiter", RateLimiter)
MAX_URL_BYTES = 8192
EXEMPT = ("/healthz", "/readyz", "/metrics", "/socket.io/")


async def limit_user(request: web.Request, user: User) -> None:
    """Count one request of an authenticated user (RateLimited past the limit)."""
    limit = request.app[SETTINGS].max_http_requests_per_minute
    await request.app[LIMITER].hit(f"u:{user.id}", limit)


async def limit_address(request: web.Request) -> None:
    """Count one unauthenticated request (or failed authentication) of the client address."""
    limit = request.app[SETTINGS].max_http_requests_per_minute_per_address
    await request.app[LIMITER].hit(f"a:{request.remote or 'unknown'}", limit)


@web.middleware
async def long_url_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """A URL over 8 KB is `invalid_request` in JSON, without quoting it back."""
    if len(request.raw_path) > MAX_URL_BYTES:
        message = f"the URL is longer than {MAX_URL_BYTES} bytes"
        error = InvalidRequest(
            message, details={"errors": [{"field": "(url)", "message": message}]}
        )
        return web.json_response({"error": error.to_dict()}, status=414)
    response: web.StreamResponse = await handler(request)
    return response


@web.middleware
async def address_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Requests without credentials count against their address (inside the errors
    middleware, so a refusal is the usual JSON error)."""
    if "Authorization" not in request.headers and not request.path.startswith(EXEMPT):
        await limit_address(request)
    response: web.StreamResponse = await handler(request)
    return response


async def throttle_ctx(app: web.Application) -> AsyncIterator[None]:
    app[LIMITER] = RateLimiter(app[REDIS], app[ENGINE].keys)
    yield
