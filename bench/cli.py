"""`promptrelay bench`: the command that runs a bench and prints its report."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
from collections.abc import Iterator

from rich.console import Console

from bench.driver import BenchConfig, default_procs, run_bench
from bench.report import print_table, write_json, write_plot
from bench.spawn import spawned_server


def _check(args: argparse.Namespace) -> str | None:
    if not args.spawn and not args.token:
        return "give --token (or $PROMPTRELAY_TOKEN), or --spawn"
    if args.clients < 1 or args.concurrency < 1 or args.idle_clients < 0:
        return "--clients and --concurrency must be at least 1, --idle-clients at least 0"
    if args.tasks is not None and args.tasks < 1:
        return "--tasks must be at least 1"
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        return "--plot writes a PNG: give a FILE.png"
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        return "--plot needs matplotlib: pip install 'promptrelay[bench]'"
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
        console.print(f"promptrelay bench: {problem}")
        return 2
    tasks = args.tasks if args.tasks is not None or args.duration else 1000
    with _target(args, console) as (url, token):
        cfg = BenchConfig(
            url=url,
            token=token,
            clients=args.clients,
            concurrency=args.concurrency,
            tasks=tasks,
            model=args.model,
            max_tokens=args.max_tokens,
            tokens_per_second=args.tokens_per_second,
            duration_s=args.duration,
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
