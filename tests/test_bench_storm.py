"""`promptrelay bench --storm`: a reconnect storm against a test server, every socket in,
the report and its plot."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from rich.console import Console

from bench.storm import plot_storm, print_storm, run_storm, storm_ok
from engine.settings import Settings
from tests.conftest import Server, start_server, stop_server

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest_asyncio.fixture
async def roomy(settings: Settings) -> AsyncIterator[Server]:
    """A server with the per-user and per-address caps lifted, as `--spawn` does: here
    every socket comes from one key and one address."""
    lifted = {
        "max_connections_per_user": 1_000_000,
        "max_pending_handshakes_per_address": 1_000_000,
        "max_pending_handshakes": 1_000_000,
    }
    srv = await start_server(settings.model_copy(update=lifted))
    try:
        yield srv
    finally:
        await stop_server(srv)


async def test_a_storm_connects_every_socket_and_reports_it(roomy: Server, tmp_path: Path) -> None:
    key = await roomy.new_key()
    console = Console(record=True, width=100)
    # run_storm has its own event loop: it runs in a thread beside the test server's
    report = await asyncio.to_thread(run_storm, roomy.url, key, 200, 1.0, console)
    assert storm_ok(report), report
    assert report["connected"] == 200 and report["failed"] == {}
    assert len(report["timeline_s"]) == 200 and report["all_in_s"] is not None
    ms = report["connect_ms"]
    assert ms["p50"] is not None and ms["p50"] <= ms["p99"] <= ms["max"]
    print_storm(report, console)
    assert "200 over 1 s" in console.export_text()
    plot = tmp_path / "storm.png"
    plot_storm(report, plot)
    assert plot.read_bytes().startswith(PNG_MAGIC)


async def test_a_refused_token_counts_every_socket_as_failed(roomy: Server) -> None:
    quiet = Console(file=io.StringIO())
    report = await asyncio.to_thread(run_storm, roomy.url, "ps_not-a-key", 20, 0.2, quiet)
    assert not storm_ok(report)
    assert report["connected"] == 0 and sum(report["failed"].values()) == 20
