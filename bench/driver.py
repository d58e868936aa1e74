"""Run a bench: start the load processes, show progress, scrape the server, build the report."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import load
from bench.scrape import Snapshot, scrape, server_figures
from bench.stats import ProcessResult, build_report

READY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class BenchConfig:
    url: str
    token: str
    clients: int
    concurrency: int
    tasks: int | None  # None: until the duration ends
    model: str
    max_tokens: int
    tokens_per_second: float | None
    duration_s: float | None
    idle_clients: int
    procs: int
    task_timeout_s: float

    def public(self) -> dict[str, Any]:
        """The configuration as the report shows it (without the token)."""
        return {k: v for k, v in asdict(self).items() if k != "token"}


def default_procs(concurrency: int, clients: int) -> int:
    """One load process per 250 tasks in flight or 500 sockets, at most one per core."""
    wanted = max(math.ceil(concurrency / 250), math.ceil(clients / 500), 1)
    return max(1, min(wanted, os.cpu_count() or 1))


def _split(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def _plans(cfg: BenchConfig) -> list[load.LoadPlan]:
    return [
        load.LoadPlan(
            index=i,
            url=cfg.url,
            token=cfg.token,
            clients=max(1, _split(cfg.clients, cfg.procs, i)),
            concurrency=_split(cfg.concurrency, cfg.procs, i),
            idle_clients=_split(cfg.idle_clients, cfg.procs, i),
            model=cfg.model,
            max_tokens=cfg.max_tokens,
            tokens_per_second=cfg.tokens_per_second,
            duration_s=cfg.duration_s,
            task_timeout_s=cfg.task_timeout_s,
        )
        for i in range(cfg.procs)
    ]


class _Run:
    def __init__(self, cfg: BenchConfig, console: Console) -> None:
        self.cfg = cfg
        self.console = console
        ctx = mp.get_context("spawn")
        budget = -1 if cfg.tasks is None else cfg.tasks
        self.shared = load.Shared(
            budget=ctx.Value("q", budget), ready=ctx.Queue(), start=ctx.Event(), results=ctx.Queue()
        )
        self.procs = [
            ctx.Process(
                target=load.main,
                args=(plan, self.shared),
                daemon=True,
                name=f"bench-load-{plan.index}",
            )
            for plan in _plans(cfg)
        ]
        self.progress: dict[int, tuple[int, int, int]] = {}
        self.results: dict[int, ProcessResult] = {}

    def _check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if not proc.is_alive() and i not in self.results and proc.exitcode not in (None, 0):
                raise RuntimeError(f"load process {i} exited with code {proc.exitcode}")

    def wait_ready(self) -> None:
        ready: set[int] = set()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ready) < len(self.procs):
            if time.monotonic() > deadline:
                raise RuntimeError("the load processes did not connect in time")
            try:
                ready.add(self.shared.ready.get(timeout=0.5))
            except queue.Empty:
                self._check_alive()

    def _drain(self) -> None:
        while True:
            try:
                item = self.shared.results.get(timeout=0.2)
            except queue.Empty:
                self._check_alive()
                return
            if item[0] == "progress":
                self.progress[item[1]] = item[2:]
            else:
                self.results[item[1]] = item[2]

    def run_load(self) -> ProcessResult:
        columns = [
            TextColumn("[bold]tasks"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>10} tokens/s  errors {task.fields[errors]}"),
            TimeElapsedColumn(),
        ]
        started = time.monotonic()
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task("tasks", total=self.cfg.tasks, rate="-", errors=0)
            self.shared.start.set()
            while len(self.results) < len(self.procs):
                self._drain()
                done = sum(p[0] for p in self.progress.values())
                tokens = sum(p[1] for p in self.progress.values())
                errors = sum(p[2] for p in self.progress.values())
                rate = tokens / max(time.monotonic() - started, 1e-3)
                bar.update(task, completed=done, rate=f"{rate:,.0f}", errors=errors)
        merged = ProcessResult()
        for result in self.results.values():
            merged.merge(result)
        return merged

    def stop(self) -> None:
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join()


Probe = Callable[[], dict[str, float]]


def run_bench(
    cfg: BenchConfig, console: Console | None = None, probe: Probe | None = None
) -> dict[str, Any]:
    """Run the whole bench against `cfg.url` and return the report. `probe`, when given, is
    read when the load starts and when it ends (CPU seconds by role); its differences go
    into the report's `probe` entry."""
    console = console or Console(stderr=True)
    before = scrape(cfg.url)
    run = _Run(cfg, console)
    for proc in run.procs:
        proc.start()
    try:
        console.print(
            f"connecting {cfg.clients} sockets and {cfg.idle_clients} idle ones"
            f" from {cfg.procs} process(es) ..."
        )
        run.wait_ready()
        time.sleep(0.5)  # let the server settle before measuring its memory
        connected: Snapshot | None = scrape(cfg.url)
        probed = probe() if probe else {}
        result = run.run_load()
        after = scrape(cfg.url)
        probed = {k: v - probed.get(k, 0.0) for k, v in probe().items()} if probe else {}
    finally:
        run.shared.start.set()
        run.stop()
    report = build_report(result, cfg.public(), server_figures(before, connected, after))
    report["probe"] = {k: round(v, 3) for k, v in probed.items()}
    return report
