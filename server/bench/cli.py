"""`promptstream bench`: the flags, and the command that runs a bench and prints its report."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from server.bench.driver import BenchConfig, default_procs, run_bench
from server.bench.report import print_table, write_json, write_plot
from server.bench.spawn import spawned_server


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `bench` and its flags on the CLI's subparsers."""
    p = sub.add_parser("bench", help="load-test a server with real Socket.IO clients")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="server to load")
    p.add_argument("--token", default=os.environ.get("PROMPTSTREAM_TOKEN"),
                   help="API key (default: $PROMPTSTREAM_TOKEN)")
    p.add_argument("--spawn", action="store_true",
                   help="start a server on embedded Postgres and Redis in a temp dir and load it")
    p.add_argument("--clients", type=int, default=10, help="sockets that run tasks")
    p.add_argument("--concurrency", type=int, default=50, help="tasks in flight")
    p.add_argument("--tasks", type=int, default=None,
                   help="tasks to run in all (default 1000, or unlimited with --duration)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to keep starting tasks")
    p.add_argument("--model", default="simulated/bench")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--tokens-per-second", type=float, default=None,
                   help="simulated models only; 0 = as fast as possible (default: 50)")
    p.add_argument("--idle-clients", type=int, default=0,
                   help="extra sockets that only hold a connection")
    p.add_argument("--procs", type=int, default=None,
                   help="load processes (default: one per 250 tasks in flight, at most one"
                        " per core)")
    p.add_argument("--task-timeout", type=float, default=120.0,
                   help="seconds before a task without task_done counts as done_timeout")
    p.add_argument("--json", type=Path, default=None, metavar="FILE")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png")


def _check(args: argparse.Namespace) -> str | None:
    if not args.spawn and not args.token:
        return "give --token (or $PROMPTSTREAM_TOKEN), or --spawn"
    if args.clients < 1 or args.concurrency < 1 or args.idle_clients < 0:
        return "--clients and --concurrency must be at least 1, --idle-clients at least 0"
    if args.tasks is not None and args.tasks < 1:
        return "--tasks must be at least 1"
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        return "--plot writes a PNG: give a FILE.png"
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        return "--plot needs matplotlib: pip install 'promptstream[bench]'"
    return None


@contextlib.contextmanager
def _target(args: argparse.Namespace, console: Console) -> Iterator[tuple[str, str]]:
    if not args.spawn:
        yield args.url, args.token
        return
    console.print("starting a server on embedded Postgres and Redis ...")
    with spawned_server() as server:
        console.print(f"spawned server at {server.url} (pid {server.pid})")
        yield server.url, server.token


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the bench; exit 0 only when every task completed with its stream intact."""
    console = Console(stderr=True)
    problem = _check(args)
    if problem:
        console.print(f"promptstream bench: {problem}")
        return 2
    tasks = args.tasks if args.tasks is not None or args.duration else 1000
    with _target(args, console) as (url, token):
        cfg = BenchConfig(
            url=url, token=token, clients=args.clients, concurrency=args.concurrency,
            tasks=tasks, model=args.model, max_tokens=args.max_tokens,
            tokens_per_second=args.tokens_per_second, duration_s=args.duration,
            idle_clients=args.idle_clients,
            procs=args.procs or default_procs(args.concurrency, args.clients + args.idle_clients),
            task_timeout_s=args.task_timeout,
        )
        report = run_bench(cfg, console)
    print_table(report, Console())
    if args.json:
        write_json(report, args.json)
    if args.plot:
        write_plot(report, args.plot)
    return 0 if report["all_streams_intact"] and not report["connect_errors"] else 1
