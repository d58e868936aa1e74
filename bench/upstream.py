"""`--upstream`: a fake provider (tests/fakes) in its own process, streaming each provider's
wire format at a set pace, and the direct-client baseline read from it in the same run."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.spawn import stop_process

PROVIDERS = ("openai", "anthropic", "google")
START_TIMEOUT_S = 60.0
# The server settings (environment) that point each adapter at the fake.
_ENV = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    "google": ("GEMINI_API_KEY", "GOOGLE_GENAI_BASE_URL"),
}


def fakes_root() -> Path | None:
    """The source checkout that holds tests/fakes, or None (an installed package has none).

    Found from this package's own place, so the `promptrelay` command of an editable
    install finds it whatever the working directory."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "tests" / "fakes" / "serve.py").is_file() else None


def fake_model(tokens: int, delay_ms: int) -> str:
    """The model name that scripts the fake: `tokens` tokens, `delay_ms` before each."""
    return f"fake~tokens={tokens}~delay_ms={delay_ms}"


@dataclass(frozen=True)
class Upstream:
    provider: str
    base_url: str
    pid: int

    def server_env(self) -> dict[str, str]:
        """What a spawned server needs in its environment to call this fake."""
        key, url = _ENV[self.provider]
        return {key: "bench", url: self.base_url}

    def cpu_s(self) -> float:
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)


@contextlib.contextmanager
def fake_upstream(provider: str, port: int = 0) -> Iterator[Upstream]:
    """Start `python -m tests.fakes.serve --provider ...` on `port` (0: any free one);
    stopped (SIGTERM) after."""
    root = fakes_root()
    if root is None:
        raise RuntimeError("--upstream needs a source checkout (it runs tests/fakes)")
    path = [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.serve", "--provider", provider, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("http"):
            raise RuntimeError(f"the fake {provider} server did not start")
        yield Upstream(provider, line, proc.pid)
    finally:
        stop_process(proc, 10.0)


def _direct_process(args: dict[str, Any], results: Any) -> None:
    """Entry point of the direct client's process (spawned)."""
    import argparse

    from bench.direct import run_direct
    from server.process.loop import run_loop

    def progress(done: int, tokens: int, errors: int) -> None:
        results.put(("progress", done, tokens, errors))

    report = run_loop(run_direct(argparse.Namespace(**args), progress))
    results.put(("result", report))


def run_direct_baseline(
    args: dict[str, Any], total: int | None, upstream: Upstream, console: Console
) -> dict[str, Any]:
    """The direct client in its own process, with a progress bar; returns its figures plus the
    fake's CPU over the run."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_direct_process, args=(args, results), daemon=True)
    columns = [
        TextColumn("[bold]direct"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10} tokens/s  errors {task.fields[errors]}"),
        TimeElapsedColumn(),
    ]
    fake_cpu0 = upstream.cpu_s()
    proc.start()
    report: dict[str, Any] | None = None
    started = time.monotonic()
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("direct", total=total, rate="-", errors=0)
        while report is None:
            try:
                item = results.get(timeout=0.5)
            except queue.Empty:
                if not proc.is_alive():
                    code = proc.exitcode
                    raise RuntimeError(f"the direct client exited with code {code}") from None
                continue
            if item[0] == "result":
                report = item[1]
                break
            rate = item[2] / max(time.monotonic() - started, 1e-3)
            bar.update(task, completed=item[1], rate=f"{rate:,.0f}", errors=item[3])
    proc.join(10)
    report["upstream_cpu_s"] = round(upstream.cpu_s() - fake_cpu0, 2)
    return report


def ratio(relay: dict[str, Any], direct: dict[str, Any]) -> float | None:
    """Relay tokens/s over direct tokens/s."""
    base = direct.get("tokens_per_s") or 0.0
    return round(relay["tokens_per_s"] / base, 3) if base else None
