"""`promptrelay bench`: the command that runs a bench and prints its report."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from bench.driver import BenchConfig, Probe, default_procs, run_bench
from bench.report import print_table, write_json, write_plot
from bench.spawn import spawned_server


@dataclass(frozen=True)
class Target:
    url: str
    token: str
    pid: int | None  # the spawned server's, when the bench started it
    redis: Callable[[], dict[str, float]] | None = None  # its Redis's command count (and CPU)


def _check(args: argparse.Namespace) -> str | None:
    if not args.spawn and not args.token:
        return "give --token (or $PROMPTRELAY_TOKEN), or --spawn"
    if args.clients < 1 or args.concurrency < 1 or args.idle_clients < 0:
        return "--clients and --concurrency must be at least 1, --idle-clients at least 0"
    if args.storm < 0 or args.storm_seconds <= 0:
        return "--storm must be at least 0 and --storm-seconds above 0"
    if args.tasks is not None and args.tasks < 1:
        return "--tasks must be at least 1"
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        return "--plot writes a PNG: give a FILE.png"
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        return "--plot needs matplotlib: pip install 'promptrelay[bench]'"
    if args.redis == "cluster":
        return _check_cluster(args) or _check_upstream(args)
    return _check_upstream(args)


def _check_cluster(args: argparse.Namespace) -> str | None:
    from bench.rediscluster import cluster_launcher

    if not args.spawn:
        return "--redis cluster starts the server's Redis: give --spawn"
    if cluster_launcher() is None:
        return (
            "--redis cluster needs a source checkout (it runs tests/redis_cluster.py)"
            " and redis-server 7 or later"
        )
    return None


def _check_upstream(args: argparse.Namespace) -> str | None:
    if args.upstream is None:
        return None
    if args.upstream_tokens < 1 or args.upstream_delay_ms < 0 or args.upstream_port < 0:
        return "--upstream-tokens must be at least 1, --upstream-delay-ms and -port at least 0"
    if not args.spawn and not args.upstream_port:
        return (
            "--upstream without --spawn needs --upstream-port, with the server's base URL"
            " for that provider pointing at it"
        )
    from bench.upstream import fakes_root

    if fakes_root() is None:
        return "--upstream needs a source checkout of promptrelay (it runs tests/fakes)"
    return None


@contextlib.contextmanager
def _target(
    args: argparse.Namespace, console: Console, env: dict[str, str] | None
) -> Iterator[Target]:
    if not args.spawn:
        yield Target(args.url, args.token, None)
        return
    from bench.rediscluster import cluster_probe, embedded_probe, local_cluster

    with contextlib.ExitStack() as stack:
        overrides = dict(env or {})
        nodes = None
        if args.redis == "cluster":
            console.print("starting a local Redis Cluster (three masters, one replica each) ...")
            nodes = stack.enter_context(local_cluster())
            overrides.update({"REDIS_URL": nodes.url, "REDIS_CLUSTER": "1"})
        console.print("starting a server on embedded Postgres and Redis ...")
        server = stack.enter_context(spawned_server(overrides, server_keys=env is not None))
        console.print(f"spawned server at {server.url} (pid {server.pid})")
        data_dir = server.env["PROMPTRELAY_DATA_DIR"]
        yield Target(
            server.url,
            server.token,
            server.pid,
            (lambda: cluster_probe(nodes)) if nodes else (lambda: embedded_probe(data_dir)),
        )


def _probe(target: Target, upstream: Any) -> Probe | None:
    """CPU seconds of the spawned server's processes (by role) and of the fake upstream."""
    if target.pid is None and upstream is None:
        return None
    from bench.proctree import tree_cpu

    def read() -> dict[str, float]:
        out = tree_cpu(target.pid) if target.pid is not None else {}
        if upstream is not None:
            out["upstream"] = upstream.cpu_s()
        if target.redis is not None:
            out.update(target.redis())
        return out

    return read


def _config(args: argparse.Namespace, target: Target, model: str, tasks: int | None) -> BenchConfig:
    return BenchConfig(
        url=target.url,
        token=target.token,
        clients=args.clients,
        concurrency=args.concurrency,
        tasks=tasks,
        model=model,
        max_tokens=args.max_tokens,
        tokens_per_second=args.tokens_per_second,
        duration_s=args.duration,
        idle_clients=args.idle_clients,
        procs=args.procs or default_procs(args.concurrency, args.clients + args.idle_clients),
        task_timeout_s=args.task_timeout,
    )


def _run(args: argparse.Namespace, console: Console, tasks: int | None) -> dict[str, Any]:
    if args.upstream is None:
        with _target(args, console, None) as target:
            cfg = _config(args, target, args.model, tasks)
            return run_bench(cfg, console, _probe(target, None))
    from bench.upstream import fake_model, fake_upstream, ratio, run_direct_baseline

    model = fake_model(args.upstream_tokens, args.upstream_delay_ms)
    with fake_upstream(args.upstream, args.upstream_port) as upstream:
        console.print(f"fake {args.upstream} upstream at {upstream.base_url} (pid {upstream.pid})")
        direct = None
        if not args.no_direct:
            direct_args = {
                "provider": args.upstream,
                "base_url": upstream.base_url,
                "model": model,
                "concurrency": args.concurrency,
                "tasks": tasks,
                "duration": args.duration,
                "max_tokens": args.max_tokens,
            }
            direct = run_direct_baseline(direct_args, tasks, upstream, console)
        with _target(args, console, upstream.server_env()) as target:
            cfg = _config(args, target, f"{args.upstream}/{model}", tasks)
            report = run_bench(cfg, console, _probe(target, upstream))
    if direct is not None:
        report["direct"] = direct
        report["ratio_to_direct"] = ratio(report, direct)
    return report


def _storm(args: argparse.Namespace, console: Console) -> int:
    from bench.storm import plot_storm, print_storm, run_storm, storm_ok

    with _target(args, console, None) as target:
        report = run_storm(target.url, target.token, args.storm, args.storm_seconds, console)
    print_storm(report, Console())
    if args.json:
        write_json(report, args.json)
    if args.plot:
        plot_storm(report, args.plot)
    return 0 if storm_ok(report) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the bench; exit 0 only when every task completed with its stream intact."""
    console = Console(stderr=True)
    problem = _check(args)
    if problem:
        console.print(f"promptrelay bench: {problem}")
        return 2
    if args.storm:
        return _storm(args, console)
    tasks = args.tasks if args.tasks is not None or args.duration else 1000
    report = _run(args, console, tasks)
    print_table(report, Console())
    if args.json:
        write_json(report, args.json)
    if args.plot:
        write_plot(report, args.plot)
    return 0 if report["all_streams_intact"] and not report["connect_errors"] else 1
