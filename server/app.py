"""The aiohttp application: resources in cleanup contexts, Socket.IO attached, routes added."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import cast

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.cluster import RedisCluster

from db.migrate import apply_migrations
from db.pool import create_pool
from engine.accounts.byok import ProviderKeys
from engine.accounts.secrets import KeyRing
from engine.aio import spawn_loop
from engine.cluster.node import ClusterNode
from engine.metrics import Metrics
from engine.providers.registry import ProviderRegistry
from engine.redis_keys import RedisKeys
from engine.settings import Settings
from engine.stream.local import LocalFeed
from engine.stream.publisher import ChunkPublisher
from engine.stream.relay import Relay
from engine.tasks.parked import PendingFinalizes
from engine.tasks.plan import RunnerDeps
from engine.tasks.service import Engine
from engine.tasks.supervisor import TaskSupervisor
from server.drain import drain_on_shutdown
from server.http.account import routes as account_routes
from server.http.agents import routes as agent_routes
from server.http.conversations import routes as conversation_routes
from server.http.cors import OriginPolicy, cors_middleware
from server.http.members import routes as member_routes
from server.http.metrics import routes as metrics_routes
from server.http.openai_compat import routes as openai_routes
from server.http.orgs import routes as org_routes
from server.http.prompts import routes as prompt_routes
from server.http.provider_keys import routes as provider_key_routes
from server.http.sse import routes as sse_routes
from server.http.tasks import errors_middleware, routes
from server.http.templates import routes as template_routes
from server.http.throttle import address_middleware, long_url_middleware, throttle_ctx
from server.realtime.handshakes import (
    GUARD,
    GuardedServer,
    HandshakeGuard,
    QuietEngineLog,
    handshake_deadline_ctx,
    handshake_middleware,
)
from server.realtime.jsonpack import FastPacket
from server.realtime.rooms import IndexedManager
from server.realtime.runs_feed import runs_feed_ctx
from server.realtime.sessions import sessions_ctx
from server.realtime.sockets import SocketGateway
from server.state import ENGINE, METRICS, NODE, POOL, REDIS, RELAY, SETTINGS, SIO
from server.web.routes import add_web_routes

log = logging.getLogger(__name__)


async def postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.database_url, "database_url must be set (the CLI starts an embedded one)"
    pool = await create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        on_query=app[METRICS].count_query,
        acquire_timeout_s=settings.db_acquire_timeout_s,
    )
    app[METRICS].watch_pool(pool.get_size, pool.get_idle_size)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    app[POOL] = pool
    yield
    await pool.close()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.redis_url, "redis_url must be set (the CLI starts an embedded one)"
    client = redis_client(settings.redis_url, settings)
    await client.ping()
    app[REDIS] = client
    yield
    await client.aclose()


def redis_client(url: str, settings: Settings) -> aioredis.Redis:
    """One node's Redis client: a pool on one server, or a Redis Cluster client that finds
    every node from the one `url` names (REDIS_CLUSTER=1)."""
    if settings.redis_cluster:
        cluster = RedisCluster.from_url(
            url,
            health_check_interval=30,
            max_connections=settings.redis_pool_max,
        )
        # The cluster client answers every command the engine sends (single-slot
        # transactions and scripts, pub/sub, sharded pub/sub) under the same names.
        return cast(aioredis.Redis, cluster)
    # Blocking pool: under a burst a command waits for a free connection instead of failing.
    return aioredis.Redis.from_pool(
        aioredis.BlockingConnectionPool.from_url(
            url,
            health_check_interval=30,
            max_connections=settings.redis_pool_max,
            timeout=settings.redis_pool_timeout_s,
        )
    )


async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """Providers, the chunk flusher, running tasks and the relay; stopped in reverse."""
    settings = app[SETTINGS]
    keys = RedisKeys(settings.redis_prefix, settings.job_partitions)
    registry = ProviderRegistry.from_settings(settings)
    metrics = app[METRICS]
    local = LocalFeed()  # records of the tasks running here, straight to this relay
    publisher = ChunkPublisher(
        app[REDIS], keys, settings.coalesce_ms / 1000, settings.history_maxlen, metrics, local=local
    )
    supervisor = TaskSupervisor()
    metrics.tasks_running.set_function(lambda: float(len(supervisor)))
    finalizes = PendingFinalizes(app[POOL], app[REDIS], keys, settings.history_ttl_s)
    deps = RunnerDeps.from_settings(
        settings, app[POOL], app[REDIS], publisher, metrics, finalizes.defer
    )
    provider_keys = ProviderKeys(
        app[POOL], KeyRing.from_setting(settings.provider_keys_secret), registry.keyed_names()
    )
    # The dispatcher by role: gateway, worker or serve.
    node = ClusterNode(settings, deps, registry, supervisor, provider_keys, finalizes)
    engine = Engine(settings, deps, registry, supervisor, provider_keys, dispatcher=node)
    relay = Relay(
        app[REDIS],
        keys,
        engine.final_payload,
        metrics,
        probe_s=settings.pubsub_probe_s,
        local=local,
    )
    app[ENGINE] = engine
    app[RELAY] = relay
    app[NODE] = node
    await node.start()
    loops = [
        spawn_loop(publisher.run(), "chunk-publisher"),
        spawn_loop(relay.run(), "relay-listener"),
    ]
    yield
    await supervisor.close()  # running tasks finalize (failed, retryable) while Redis is up
    await node.close()
    await relay.close()
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    await registry.close()
    await engine.deps.validator.close()


def create_app(settings: Settings) -> web.Application:
    """The whole gateway and engine of one node."""
    origins = OriginPolicy(settings.cors_allowed_origins)
    app = web.Application(
        middlewares=[
            long_url_middleware,
            cors_middleware(origins),
            handshake_middleware,
            errors_middleware,
            address_middleware,
        ],
        client_max_size=settings.max_payload_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()  # per app: tests run several apps in one process
    app.cleanup_ctx.extend([postgres_ctx, redis_ctx, engine_ctx, throttle_ctx])
    sio = GuardedServer(  # caps Engine.IO sessions that have not authenticated
        HandshakeGuard.from_settings(settings),
        async_mode="aiohttp",
        cors_allowed_origins=origins.socketio_rule(),
        cors_credentials=False,  # tokens, never cookies (server/http/cors.py)
        logger=False,
        engineio_logger=QuietEngineLog(),  # no tracebacks for a client's garbage
        ping_interval=settings.ping_interval_s,
        ping_timeout=settings.ping_timeout_s,
        # Room to read an oversized event and answer payload_too_large instead of dropping
        # the connection; beyond this the transport itself refuses it.
        max_http_buffer_size=settings.max_payload_bytes * 2 + 64 * 1024,
        serializer=FastPacket if settings.fast_json else "default",
        client_manager=IndexedManager(),  # a disconnect leaves only its own rooms
    )
    sio.attach(app)
    app[SIO] = sio
    app[GUARD] = sio
    app.cleanup_ctx.append(handshake_deadline_ctx)
    gateway = SocketGateway(sio, app)
    gateway.register()
    app.add_routes(routes)
    app.add_routes(sse_routes)  # GET /v1/tasks/{id}/stream
    app.add_routes(metrics_routes)
    app.add_routes(account_routes)
    app.cleanup_ctx.append(sessions_ctx)  # after engine_ctx: its loops stop first
    app.add_routes([*prompt_routes, *org_routes])  # the prompt library, orgs, variables
    app.add_routes(template_routes)  # the public template gallery
    app.add_routes(agent_routes)  # agents and agent templates
    app.add_routes(member_routes)  # removing org and project members
    app.add_routes(provider_key_routes)
    app.add_routes(conversation_routes)  # conversations, executions, prompt statistics
    app.add_routes(openai_routes)  # POST /v1/chat/completions, GET /v1/models
    app.cleanup_ctx.append(runs_feed_ctx)  # runs_changed to the run owner's sockets that ask
    add_web_routes(app)  # last: its GET /v1/builtins steps aside for a real one
    # SIGTERM: tell clients, close idle sockets, let tasks end
    app.on_shutdown.append(drain_on_shutdown(sio, gateway.busy))
    return app
