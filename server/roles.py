"""The node roles. `serve` and `gateway` are the full application of server/app.py (the
engine's dispatcher differs by `settings.role`, see engine/cluster.py); a worker has no
Socket.IO and no API, only `/healthz` and `/readyz` for its orchestrator.
"""

from __future__ import annotations

from aiohttp import web

from engine.settings import Settings
from server.app import create_app, engine_ctx, postgres_ctx, redis_ctx
from server.drain import drain_on_shutdown
from server.http import healthz, readyz
from server.state import SETTINGS


def create_worker_app(settings: Settings) -> web.Application:
    """A worker node: the engine without Socket.IO or the API, plus health routes."""
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([postgres_ctx, redis_ctx, engine_ctx])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.on_shutdown.append(drain_on_shutdown(None))
    return app


def create_node_app(settings: Settings) -> web.Application:
    """The application of `settings.role`."""
    if settings.role == "worker":
        return create_worker_app(settings)
    return create_app(settings)
