"""`promptrelay` command line: serve, gateway, worker, migrate, keys create."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from importlib.metadata import entry_points

import asyncpg
from aiohttp import web

from db import users
from db.migrate import apply_migrations
from db.pool import connect
from engine.settings import Settings
from server.cli import provider_keys as cli_provider_keys
from server.cli.api_keys import add_key_commands, run_key_command
from server.cli.infra import infrastructure, with_database
from server.http.heads import run_node_app
from server.process.local_workers import LocalWorkers, watch_parent, worker_count
from server.process.local_workers import attach as attach_local_workers
from server.process.logs import configure_logging
from server.process.loop import new_loop, tune_gc
from server.process.signals import handle_stop_signals
from server.roles import create_node_app
from server.web.assets import ensure_installed

DEMO_EMAIL = "demo@localhost"
# Connections the kernel queues before the server accepts them (capped by the kernel's
# net.core.somaxconn). aiohttp's default of 128 overflows in a reconnect storm, and each
# dropped SYN costs its client a retransmit after 1, 3, 7... seconds (docs/benchmarks.md).
LISTEN_BACKLOG = 4096


async def _prepare(database_url: str) -> str | None:
    """Apply migrations; on an empty database create the demo user and return its key."""
    conn = await connect(database_url)
    try:
        await apply_migrations(conn)
        if await users.count_users(conn) > 0:
            return None
        user = await users.ensure_user(conn, DEMO_EMAIL, "premium")
        new_key = await users.create_api_key(conn, user.id, "demo")
        return new_key.key
    finally:
        await conn.close()


def _print_welcome(settings: Settings, demo_key: str | None) -> None:
    url = f"http://{settings.host}:{settings.port}"
    if demo_key:
        print(f"created demo user {DEMO_EMAIL}; its API key (shown once):")
        print(f"  {demo_key}")
        print(f"open the playground: {url}/#key={demo_key}")
        print("try it:")
        print(f"  curl -s -X POST {url}/v1/executions -H 'Authorization: Bearer {demo_key}' \\")
        print("       -H 'Content-Type: application/json' \\")
        print('       -d \'{"messages":[{"role":"user","content":"Hello"}]}\'')
    else:
        print("create an API key with: promptrelay keys create --user you@example.com")
    print(f"default model: {settings.resolved_default_model()}")
    # Last, so that scripts can wait for this line.
    print(f"promptrelay listening on {url}  (Socket.IO path /socket.io)")
    sys.stdout.flush()


def cmd_serve(settings: Settings, parent_pid: int | None = None) -> int:
    """Run a node of `settings.role` (serve, gateway or worker) until SIGINT/SIGTERM."""
    problem = ensure_installed() if settings.role != "worker" else None  # the playground's
    if problem:  # socket.io-client
        print(problem, file=sys.stderr)
    with infrastructure(settings) as live, contextlib.ExitStack() as stack:
        assert live.database_url is not None
        demo_key = asyncio.run(_prepare(live.database_url)) if live.role == "serve" else None
        app = _node_app(live, stack, parent_pid)
        tune_gc(live.gc_threshold)
        welcome = _print_welcome if live.role == "serve" else _print_role
        run_node_app(  # aiohttp's run_app, with refused request heads answered in JSON
            app,
            host=live.host,
            port=live.port,
            on_ready=lambda: welcome(live, demo_key),
            backlog=LISTEN_BACKLOG,
            shutdown_timeout=10.0,
            loop=new_loop() if live.uvloop else None,
        )
        # it returns after SIGINT/SIGTERM, once cleanup contexts have run
    return 0


def _node_app(
    live: Settings, stack: contextlib.ExitStack, parent_pid: int | None
) -> web.Application:
    """The node's application; `serve` with local workers is a gateway that starts them
    (they stop, in order, before `stack` and then the embedded servers close)."""
    count = worker_count(live) if live.role == "serve" else 0
    app = create_node_app(live.model_copy(update={"role": "gateway"}) if count else live)
    handle_stop_signals(app)  # a second Ctrl-C ends running tasks at once
    if count:
        workers = LocalWorkers(live, count)
        workers.start()
        stack.callback(workers.wait, workers.stop_timeout_s())
        attach_local_workers(app, workers)
    if parent_pid is not None:
        watch_parent(app, parent_pid)
    return app


def _print_role(settings: Settings, _demo_key: str | None) -> None:
    url = f"http://{settings.host}:{settings.port}"
    print(f"promptrelay {settings.role} listening on {url}", flush=True)


def cmd_migrate(settings: Settings) -> int:
    with infrastructure(settings, need_redis=False) as live:
        assert live.database_url is not None

        async def run() -> list[str]:
            conn = await connect(live.database_url or "")
            try:
                return await apply_migrations(conn)
            finally:
                await conn.close()

        applied = asyncio.run(run())
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def cmd_keys_create(settings: Settings, email: str, tier: str | None, name: str) -> int:
    async def create(conn: asyncpg.Connection) -> users.NewKey:
        user = await users.ensure_user(conn, email, tier)
        return await users.create_api_key(conn, user.id, name)

    new_key = with_database(settings, create)
    print(f"created key {new_key.prefix}... for {email}")
    print(new_key.key)
    return 0


def add_plugin_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands other packages register in the `promptrelay.commands` entry point group:
    each entry is a function that adds its subparser and sets `run_command` on it. The
    load test (`bench`) sits above the server this way without the server importing it."""
    for entry in sorted(entry_points(group="promptrelay.commands"), key=lambda e: e.name):
        entry.load()(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptrelay", description="Stream LLM prompt executions over Socket.IO."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway and the engine in one process")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    for role, about in (
        ("gateway", "Socket.IO and HTTP only; tasks go to workers via Redis"),
        ("worker", "run tasks from the job stream (health routes only)"),
    ):
        node = sub.add_parser(role, help=about)
        node.add_argument("--host", default=None)
        node.add_argument("--port", type=int, default=None)
        if role == "worker":  # set by `serve` for its local workers: stop when it is gone
            node.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    sub.add_parser("migrate", help="apply pending database migrations and exit")
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a user if needed and a new API key")
    create.add_argument("--user", required=True, help="the user's email")
    create.add_argument("--tier", choices=["free", "premium", "byok"], default=None)
    create.add_argument("--name", default="cli")
    add_plugin_commands(sub)
    add_key_commands(keys_sub, sub)
    cli_provider_keys.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    if getattr(args, "host", None):
        settings = settings.model_copy(update={"host": args.host})
    if getattr(args, "port", None):
        settings = settings.model_copy(update={"port": args.port})
    configure_logging(settings.log_level, settings.log_format)
    if args.command in ("serve", "gateway", "worker"):
        role_settings = settings.model_copy(update={"role": args.command})
        return cmd_serve(role_settings, getattr(args, "parent_pid", None))
    plugin = getattr(args, "run_command", None)
    if plugin is not None:  # a command registered by another package (`bench`)
        return int(plugin(args))
    if args.command == "migrate":
        return cmd_migrate(settings)
    if args.command == "provider-keys":
        return cli_provider_keys.run(settings, args, infrastructure)
    if args.command == "users" or args.keys_command != "create":
        return run_key_command(settings, args)
    return cmd_keys_create(settings, args.user, args.tier, args.name)


if __name__ == "__main__":
    sys.exit(main())
