"""`promptrelay bench --storm N`: a reconnect storm.

What a node meets after a restart or a network cut: N browsers connecting at once. The
connects are started at an even pace over `--storm-seconds`, with no cap on how many are
in flight, each the way a browser tab connects: a websocket that offers permessage-deflate,
the Engine.IO open packet, a Socket.IO CONNECT with the token, answered pings. The report
says how many got in, how long each took, when the last one was in, the server's memory
per socket, and the load process's own CPU (one process opens them all; when it is at its
limit, the figures are the client's).
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.idle import hold, open_socket
from bench.scrape import scrape
from bench.stats import percentile

CONNECT_TIMEOUT_S = 60.0  # a connect that takes longer counts as failed


@dataclass
class _Storm:
    url: str
    token: str
    connect_s: list[float] = field(default_factory=list)  # per socket that got in
    done_at: list[float] = field(default_factory=list)  # since the storm began
    failures: Counter[str] = field(default_factory=Counter)
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    holders: set[asyncio.Task[None]] = field(default_factory=set)

    async def connect(self, session: aiohttp.ClientSession, began: float) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                ws = await open_socket(session, self.url, self.token)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, TypeError) as exc:
            self.failures[type(exc).__name__] += 1
            return
        now = time.monotonic()
        self.sockets.append(ws)
        self.connect_s.append(now - started)
        self.done_at.append(now - began)
        holder = asyncio.create_task(hold(ws))
        self.holders.add(holder)
        holder.add_done_callback(self.holders.discard)

    async def close(self) -> None:
        for holder in list(self.holders):
            holder.cancel()
        await asyncio.gather(*self.holders, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def _run(url: str, token: str, n: int, seconds: float, progress: Progress) -> dict[str, Any]:
    ws_url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    storm = _Storm(f"{ws_url.rstrip('/')}/socket.io/?EIO=4&transport=websocket", token)
    before = await asyncio.to_thread(scrape, url)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    bar = progress.add_task("connected", total=n)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        began = time.monotonic()
        attempts = []
        for i in range(n):
            attempts.append(asyncio.create_task(storm.connect(session, began)))
            # Always yield, even when behind the pace: the started connects must run.
            await asyncio.sleep(max(0.0, began + (i + 1) * seconds / n - time.monotonic()))
            if i % 100 == 0:
                progress.update(bar, completed=len(storm.connect_s))
        launched_s = time.monotonic() - began
        pending = set(attempts)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            progress.update(bar, completed=len(storm.connect_s))
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(2.0)  # the server's counts settle
        connected = await asyncio.to_thread(scrape, url)
        held = sum(1 for ws in storm.sockets if not ws.closed)
        await storm.close()
    load_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (
        cpu_before.ru_utime + cpu_before.ru_stime
    )
    report: dict[str, Any] = {
        "storm": n,
        "storm_seconds": seconds,
        "connected": len(storm.connect_s),
        "failed": dict(storm.failures),
        "held_at_end": held,
        "launched_s": round(launched_s, 2),
        "all_in_s": round(max(storm.done_at), 2) if storm.done_at else None,
        "connect_ms": {
            name: None if value is None else round(value * 1000, 1)
            for name, value in (
                ("p50", percentile(storm.connect_s, 50)),
                ("p99", percentile(storm.connect_s, 99)),
                ("max", max(storm.connect_s, default=None)),
            )
        },
        "load_process_cpu_s": round(load_cpu, 2),
        "timeline_s": sorted(storm.done_at),
    }
    if before is not None and connected is not None:
        sockets = connected.sockets - before.sockets
        report["server_sockets_added"] = sockets
        if sockets > 0:
            report["server_kb_per_socket"] = round(
                (connected.rss_bytes - before.rss_bytes) / sockets / 1024, 1
            )
    return report


def run_storm(url: str, token: str, n: int, seconds: float, console: Console) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        return asyncio.run(_run(url, token, n, seconds, progress))


def storm_ok(report: dict[str, Any]) -> bool:
    return bool(report["connected"] == report["storm"] and not report["failed"])


def print_storm(report: dict[str, Any], console: Console) -> None:
    table = Table(title="promptrelay bench: reconnect storm", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    ms = report["connect_ms"]
    rows = [
        ("connects started", f"{report['storm']:,} over {report['storm_seconds']:g} s"),
        ("connected", f"{report['connected']:,}"),
        ("failed", ", ".join(f"{k} {v}" for k, v in report["failed"].items()) or "none"),
        ("last one connected at s", f"{report['all_in_s']}"),
        ("connect time ms", f"p50 {ms.get('p50')}  p99 {ms.get('p99')}  max {ms.get('max')}"),
        ("server: memory KB per socket", f"{report.get('server_kb_per_socket', '-')}"),
        ("load process CPU s", f"{report['load_process_cpu_s']}"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)


def plot_storm(report: dict[str, Any], path: Any) -> None:
    """Sockets connected over time against the connects started."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    done = report["timeline_s"]
    ax.plot(done, range(1, len(done) + 1), label="connected")
    ax.plot([0, report["storm_seconds"]], [0, report["storm"]], linestyle="--", label="started")
    ax.set_xlabel("seconds since the storm began")
    ax.set_ylabel("sockets")
    n, seconds = report["storm"], report["storm_seconds"]
    ax.set_title(f"reconnect storm: {n:,} connects started over {seconds:g} s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
