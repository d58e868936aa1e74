"""`promptrelay bench`: the report's bookkeeping, a run against the test server, and --spawn."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.direct import run_direct as direct_run
from bench.driver import BenchConfig, run_bench
from bench.load import run_task
from bench.report import rows, write_json, write_plot
from bench.scrape import Snapshot, parse, server_figures
from bench.stats import ProcessResult, TaskTrace, build_report, percentile
from promptrelay_client import Client
from server.process.loop import tune_gc
from tests.conftest import Server
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.google_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI
from tests.nodes import until

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def trace(
    chunks: list[tuple[int, str]], text: str, last_seq: int, status: str = "completed"
) -> TaskTrace:
    t = TaskTrace(sent=100.0, task_id="t")
    for i, (seq, part) in enumerate(chunks):
        t.chunk(100.1 + i * 0.01, seq, part)
    t.finish(
        101.0,
        {
            "status": status,
            "text": text,
            "last_seq": last_seq,
            "usage": {"output_tokens": 3},
            "error": None,
        },
    )
    return t


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99
    assert percentile(values, 100) == 100 and percentile([], 50) is None


def test_a_stream_is_intact_only_when_contiguous_complete_and_done_last() -> None:
    assert trace([(1, "a "), (2, "b")], "a b", 2).outcome() is None
    assert trace([(1, "a "), (3, "b")], "a b", 3).outcome() == "stream_broken"  # gap
    assert trace([(1, "a "), (1, "a ")], "a a ", 2).outcome() == "stream_broken"  # duplicate
    assert trace([(1, "a "), (2, "c")], "a b", 2).outcome() == "stream_broken"  # text differs
    late = trace([(1, "a ")], "a ", 1)
    late.chunk(102.0, 2, "x")
    assert late.outcome() == "stream_broken"  # a chunk after task_done
    twice = trace([(1, "a ")], "a ", 1)
    twice.finish(102.0, twice.done or {})
    assert twice.outcome() == "stream_broken"
    repaired = trace([(1, "a "), (2, "b")], "a b", 2)
    repaired.anomalies = ["repeat"]  # whole as delivered, but the server sent a seq twice
    assert repaired.outcome() == "stream_broken"
    failed = trace([], "", 0, status="failed")
    failed.done = {**(failed.done or {}), "error": {"code": "timeout"}}
    assert failed.outcome() == "timeout"


def test_report_figures_add_up() -> None:
    result = ProcessResult()
    for _ in range(4):
        result.add(trace([(1, "a "), (2, "b "), (3, "c")], "a b c", 3))
    bad = TaskTrace(sent=100.0)
    bad.error = "rate_limited"
    result.add(bad)
    result.cpu_s = 0.024
    report = build_report(result, {"model": "simulated/x"})
    assert report["tasks"] == 5 and report["completed_intact"] == 4
    assert report["errors"] == {"rate_limited": 1} and not report["all_streams_intact"]
    assert report["tokens"] == 12 and report["chunks"] == 12
    assert report["elapsed_s"] == 1.0 and report["tokens_per_s"] == 12.0
    assert report["ttft_ms"]["p50"] == 100.0 and report["latency_ms"]["p99"] == 1000.0
    assert round(sum(p["tokens_per_s"] for p in report["timeline"]) * 0.25) == 12
    assert report["load_cpu_us_per_chunk"] == 2000.0
    assert ("errors by code", "rate_limited 1") in rows(report)


async def test_bench_against_the_server(server: Server, tmp_path: Path) -> None:
    cfg = BenchConfig(
        url=server.url,
        token=await server.new_key(),
        clients=3,
        concurrency=6,
        tasks=24,
        model="simulated/bench",
        max_tokens=50,
        tokens_per_second=0,
        duration_s=None,
        idle_clients=20,
        procs=2,
        task_timeout_s=60,
    )
    # The bench blocks (it waits on its load processes); the server runs on this loop.
    report = await asyncio.to_thread(run_bench, cfg, Console(file=sys.stderr))
    assert report["tasks"] == 24 and report["completed_intact"] == 24
    assert report["all_streams_intact"] and report["errors"] == {}
    assert report["connect_errors"] == {}
    assert report["tokens"] == 24 * 50 and report["chunks"] >= 24
    assert report["tokens_per_s"] > 0 and report["ttft_ms"]["p99"] is not None
    assert report["load_cpu_us_per_chunk"] > 0
    server_side = report["server"]
    assert server_side["tasks_ended"] == 24 and server_side["tokens_relayed"] == 24 * 50
    assert 0 < server_side["pg_statements_per_task"] <= 2.0  # grouped: fewer under load
    assert server_side["sockets_opened"] == 3 + 20
    assert server_side["chunks_emitted"] == report["chunks"]
    write_json(report, tmp_path / "r.json")
    write_plot(report, tmp_path / "r.png")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["tasks"] == 24 and "token" not in saved["config"] and "_samples" not in saved
    assert (tmp_path / "r.png").read_bytes().startswith(PNG_MAGIC)


async def test_a_repeat_the_client_repaired_still_breaks_the_stream(server: Server) -> None:
    """The bench runs tasks on promptrelay_client, which drops a repeated seq; the bench
    still counts the stream as broken, as it did when it read the raw events."""
    request = {
        "model": "simulated/bench",
        "settings": {"max_tokens": 40, "tokens_per_second": 40},
        "messages": [{"role": "user", "content": "twice"}],
    }
    async with Client(server.url, await server.new_key(), attempts=1) as client:
        tracing = asyncio.create_task(run_task(client, request, 60))
        await until(lambda: any(t.last_seq >= 2 for t in client.live.values()), what="chunks")
        (task,) = client.live.values()
        # The same socket subscribing again from seq 0: the server sends chunks 1, 2, ...
        # again (its subscribe contract), which the client drops as repeats.
        await client.sio.call("subscribe", {"task_id": task.task_id, "after_seq": 0})
        traced = await tracing
    assert traced.done is not None and traced.done["status"] == "completed"
    assert "".join(text for _, _, text in traced.chunks) == traced.done["text"]
    assert "repeat" in traced.anomalies and traced.outcome() == "stream_broken"


def test_bench_spawn_one_command(tmp_path: Path) -> None:
    """On a fresh data dir: spawn a server, load it, print the table, write JSON and PNG."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "bench",
            "--spawn",
            "--tasks",
            "20",
            "--concurrency",
            "5",
            "--clients",
            "2",
            "--max-tokens",
            "30",
            "--tokens-per-second",
            "0",
            "--json",
            str(tmp_path / "b.json"),
            "--plot",
            str(tmp_path / "b.png"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "every stream intact" in out.stdout and "delivered tokens/s" in out.stdout
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["completed_intact"] == 20 and report["tokens"] == 20 * 30
    assert 0 < report["server"]["pg_statements_per_task"] <= 2.0  # grouped: fewer under load
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_MAGIC)


def test_bench_without_a_target_says_what_to_give() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "bench", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2 and "--token" in out.stderr


def test_tune_gc_sets_the_young_threshold_and_zero_leaves_it() -> None:
    saved = gc.get_threshold()
    try:
        tune_gc(0)
        assert gc.get_threshold() == saved
        tune_gc(12_345)
        assert gc.get_threshold() == (12_345, *saved[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)


async def test_direct_client_reads_the_fake_openai_server() -> None:
    async with FakeOpenAI() as fake:
        args = argparse.Namespace(
            base_url=fake.base_url, model="fake:tokens=16", concurrency=3, tasks=7
        )
        result = await direct_run(args)
    assert result["tasks"] == 7 and result["tokens"] == 7 * 16
    assert result["tokens_per_s"] > 0 and result["cpu_s_per_1k_tokens"] > 0


def test_memory_per_socket_needs_many_sockets() -> None:
    def snap(rss_mb: float, sockets: float, tasks: float = 0) -> Snapshot:
        return Snapshot(
            cpu_s=tasks / 100,
            rss_bytes=rss_mb * 2**20,
            sockets=sockets,
            pg_queries=2 * tasks,
            tasks=tasks,
            tokens=10 * tasks,
            chunks_emitted=tasks,
        )

    few = server_figures(snap(100, 0), snap(101, 20), snap(101, 20, 50))
    assert few["rss_kb_per_socket"] is None and few["pg_statements_per_task"] == 2.0
    many = server_figures(snap(100, 0), snap(132, 1024), snap(132, 1024, 50))
    assert many["rss_kb_per_socket"] == 32.0 and many["cpu_s_per_1k_tokens"] == 1.0


def test_background_statements_are_not_the_tasks() -> None:
    text = (
        "# TYPE promptrelay_pg_queries_total counter\n"
        'promptrelay_pg_queries_total{source="request"} 8.0\n'
        'promptrelay_pg_queries_total{source="background"} 5.0\n'
    )
    assert parse(text).pg_queries == 8.0


@pytest.mark.parametrize(
    ("provider", "fake"), [("anthropic", FakeAnthropic), ("google", FakeGemini)]
)
async def test_direct_client_reads_each_provider_format(provider: str, fake: type[Any]) -> None:
    async with fake() as server:
        args = argparse.Namespace(
            provider=provider,
            base_url=server.base_url,
            model="fake~tokens=12~delay_ms=1",
            concurrency=2,
            tasks=5,
        )
        result = await direct_run(args)
    assert result["completed"] == 5 and result["errors"] == {}
    assert result["tokens"] == 5 * 12 and result["ttft_ms"]["p99"] is not None


def test_bench_upstream_runs_relay_and_direct_on_one_fake(tmp_path: Path) -> None:
    """--upstream starts the fake, points the spawned server at it, runs both, prints a ratio."""
    out = subprocess.run(
        [
            *(sys.executable, "-m", "server.cli", "bench", "--spawn", "--upstream", "google"),
            *("--upstream-tokens", "8", "--upstream-delay-ms", "2"),
            *("--tasks", "12", "--concurrency", "4", "--clients", "2"),
            *("--json", str(tmp_path / "u.json")),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "relay / direct tokens/s" in out.stdout and "direct" in out.stderr
    report = json.loads((tmp_path / "u.json").read_text())
    assert report["config"]["model"] == "google/fake~tokens=8~delay_ms=2"
    assert report["completed_intact"] == 12 and report["tokens"] == 12 * 8
    assert report["direct"]["completed"] == 12 and report["direct"]["tokens"] == 12 * 8
    assert report["ratio_to_direct"] > 0
    # CPU of the spawned server's processes and of the fake (a tiny run may round to 0 there)
    assert report["probe"]["server"] > 0 and report["probe"]["upstream"] >= 0


def test_bench_upstream_without_spawn_needs_a_port() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "bench", "--token", "k", "--upstream", "openai"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--upstream-port" in out.stderr
