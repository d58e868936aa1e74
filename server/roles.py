"""The node roles. `serve` and `gateway` are the full application of server/app.py (the
engine's dispatcher differs by `settings.role`, see engine/cluster/node.py); a worker has no
Socket.IO and no API, only `/healthz`, `/readyz` and `/metrics` for its orchestrator.
"""

from __future__ import annotations

from aiohttp import web

from engine.metrics import Metrics
from engine.settings import Settings
from server.app import create_app, engine_ctx, postgres_ctx, redis_ctx
from server.drain import drain_on_shutdown
from server.http.metrics import routes as metrics_routes
from server.http.tasks import healthz, readyz
from server.state import METRICS, SETTINGS


def create_worker_app(settings: Settings) -> web.Application:
    """A worker node: the engine without Socket.IO or the API; health routes and metrics."""
    app = web.Application()
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.extend([postgres_ctx, redis_ctx, engine_ctx])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.add_routes(metrics_routes)  # Prometheus scrapes workers too
    app.on_shutdown.append(drain_on_shutdown(None))
    return app


def create_node_app(settings: Settings) -> web.Application:
    """The application of `settings.role`."""
    if settings.role == "worker":
        return create_worker_app(settings)
    return create_app(settings)
