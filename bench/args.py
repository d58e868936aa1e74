"""`promptrelay bench` flags: the standard library only, so the CLI can list them without
loading the load-test client (its imports come with `pip install 'promptrelay[bench]'`)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `bench` and its flags on the CLI's subparsers."""
    p = sub.add_parser("bench", help="load-test a server with real Socket.IO clients")
    p.set_defaults(run_command=run_bench_command)
    p.add_argument("--url", default="http://127.0.0.1:8080", help="server to load")
    p.add_argument(
        "--token",
        default=os.environ.get("PROMPTRELAY_TOKEN"),
        help="API key (default: $PROMPTRELAY_TOKEN)",
    )
    p.add_argument(
        "--spawn",
        action="store_true",
        help="start a server on embedded Postgres and Redis in a temp dir and load it",
    )
    p.add_argument(
        "--redis",
        choices=["embedded", "cluster"],
        default="embedded",
        help="--spawn: the server's Redis: its embedded one, or a local Redis Cluster of three"
        " masters with one replica each that the bench starts (redis-server 7, a source"
        " checkout); either way the report counts Redis commands per task",
    )
    p.add_argument("--clients", type=int, default=10, help="sockets that run tasks")
    p.add_argument("--concurrency", type=int, default=50, help="tasks in flight")
    p.add_argument(
        "--tasks",
        type=int,
        default=None,
        help="tasks to run in all (default 1000, or unlimited with --duration)",
    )
    p.add_argument("--duration", type=float, default=None, help="seconds to keep starting tasks")
    p.add_argument("--model", default="simulated/bench")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument(
        "--tokens-per-second",
        type=float,
        default=None,
        help="simulated models only; 0 = as fast as possible (default: 50)",
    )
    p.add_argument(
        "--idle-clients", type=int, default=0, help="extra sockets that only hold a connection"
    )
    p.add_argument(
        "--procs",
        type=int,
        default=None,
        help="load processes (default: one per 250 tasks in flight, at most one per core)",
    )
    p.add_argument(
        "--task-timeout",
        type=float,
        default=120.0,
        help="seconds before a task without task_done counts as done_timeout",
    )
    p.add_argument(
        "--upstream",
        choices=["openai", "anthropic", "google"],
        default=None,
        help="stream from a fake provider (tests/fakes, in its wire format) started by the"
        " bench; with --spawn the server is pointed at it. Also runs a direct client on it",
    )
    p.add_argument(
        "--upstream-delay-ms", type=int, default=20, help="--upstream: ms before each token"
    )
    p.add_argument("--upstream-tokens", type=int, default=64, help="--upstream: tokens a stream")
    p.add_argument(
        "--upstream-port",
        type=int,
        default=0,
        help="--upstream: the fake's port (default any free one; give one to point a server"
        " you started yourself at it)",
    )
    p.add_argument(
        "--no-direct", action="store_true", help="--upstream: skip the direct-client baseline"
    )
    p.add_argument(
        "--storm",
        type=int,
        default=0,
        metavar="N",
        help="instead of tasks: a reconnect storm of N socket connects (browser-like:"
        " websocket offering permessage-deflate), started evenly over --storm-seconds",
    )
    p.add_argument(
        "--storm-seconds", type=float, default=10.0, help="--storm: seconds to start them in"
    )
    p.add_argument("--json", type=Path, default=None, metavar="FILE")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png")


# What the `bench` extra brings; without them the command says so instead of a traceback.
EXTRA_MODULES = ("rich", "matplotlib", "psutil")


def missing_extra() -> str | None:
    """The message for a `promptrelay bench` run without the `bench` extra, or None."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        "promptrelay bench needs the 'bench' extra ("
        + ", ".join(missing)
        + " missing): pip install 'promptrelay[bench]'"
    )


def run_bench_command(args: argparse.Namespace) -> int:
    """Load the load-test client only for this command, after checking its extra is there."""
    problem = missing_extra()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    from bench.cli import cmd_bench

    return cmd_bench(args)
