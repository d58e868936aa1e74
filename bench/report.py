"""The bench report as a table, a JSON file and a PNG plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _dist(d: dict[str, Any]) -> str:
    return "  ".join(f"{k} {_fmt(v)}" for k, v in d.items())


def rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of the table, in order."""
    errors = report["errors"]
    server = report["server"]
    out = [
        ("tasks", _fmt(report["tasks"])),
        ("completed, stream intact", _fmt(report["completed_intact"])),
        ("every stream intact", "yes" if report["all_streams_intact"] else "NO"),
        ("errors by code", ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"),
        ("elapsed s", _fmt(report["elapsed_s"])),
        ("completed tasks/s", _fmt(report.get("tasks_per_s"))),
        ("delivered tokens/s", _fmt(report["tokens_per_s"])),
        ("delivered chunks/s", _fmt(report["chunks_per_s"])),
        ("time to first chunk ms", _dist(report["ttft_ms"])),
        ("inter-chunk gap ms", _dist(report["gap_ms"])),
        ("task latency ms", _dist(report["latency_ms"])),
        ("load processes: CPU µs per chunk", _fmt(report.get("load_cpu_us_per_chunk"))),
    ]
    if report["connect_errors"]:
        out.append(
            (
                "connect errors",
                ", ".join(f"{k} {v}" for k, v in sorted(report["connect_errors"].items())),
            )
        )
    labels = {
        "pg_statements_per_task": "server: Postgres statements per task",
        "cpu_s_per_1k_tokens": "server: CPU s per 1,000 tokens",
        "cpu_ms_per_task": "server: CPU ms per task",
        "rss_kb_per_socket": "server: memory KB per open socket",
        "rss_mb_end": "server: resident memory MB at end",
    }
    out += [(label, _fmt(server.get(key))) for key, label in labels.items() if key in server]
    return out + _probe_rows(report) + _direct_rows(report)


def _probe_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """CPU of every process of a spawned server, and of the fake upstream."""
    probe = report.get("probe") or {}
    tokens = report["server"].get("tokens_relayed") or report["tokens"]
    out = []
    labels = {
        "server": "server processes (all): CPU s per 1,000 tokens",
        "stores": "embedded Postgres + Redis: CPU s per 1,000 tokens",
    }
    for key, label in labels.items():
        if key in probe and tokens:
            out.append((label, _fmt(round(probe[key] / tokens * 1000, 4))))
    if "redis_cluster_cpu" in probe and tokens:
        per_1k = round(probe["redis_cluster_cpu"] / tokens * 1000, 4)
        out.append(("Redis Cluster (six nodes): CPU s per 1,000 tokens", _fmt(per_1k)))
    if "redis_calls" in probe and report["tasks"]:
        per_task = round(probe["redis_calls"] / report["tasks"], 1)
        out.append(("Redis commands per task (INFO commandstats)", _fmt(per_task)))
    if "upstream" in probe:
        out.append(("fake upstream: CPU s during the relay run", _fmt(probe["upstream"])))
    return out


def _direct_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The direct client's figures on the same upstream, and the ratio."""
    direct = report.get("direct")
    if not direct:
        return []
    errors = ", ".join(f"{k} {v}" for k, v in sorted(direct["errors"].items())) or "none"
    return [
        ("direct client: streams completed", f"{_fmt(direct['completed'])} (errors: {errors})"),
        ("direct client: tokens/s", _fmt(direct["tokens_per_s"])),
        ("direct client: time to first token ms", _dist(direct["ttft_ms"])),
        ("fake upstream: CPU s during the direct run", _fmt(direct.get("upstream_cpu_s"))),
        ("relay / direct tokens/s", _fmt(report.get("ratio_to_direct"))),
    ]


def print_table(report: dict[str, Any], console: Console | None = None) -> None:
    table = Table(title="promptrelay bench", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for label, value in rows(report):
        table.add_row(label, value)
    (console or Console()).print(table)


def write_json(report: dict[str, Any], path: Path) -> None:
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    path.write_text(json.dumps(public, indent=2) + "\n")


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Throughput over time, and the latency distributions as CDFs (matplotlib, Agg)."""
    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8))
    timeline = report["timeline"]
    t = [p["t"] for p in timeline]
    top.plot(t, [p["tokens_per_s"] for p in timeline], label="tokens/s")
    top.plot(t, [p["chunks_per_s"] for p in timeline], label="chunks/s")
    top.set_xlabel("seconds since the first task was sent")
    top.set_ylabel("delivered per second")
    top.set_title(_title(report))
    top.legend()
    top.grid(alpha=0.3)
    for name, samples in report["_samples"].items():
        ms = sorted(s * 1000 for s in samples if s > 0)
        if ms:
            bottom.plot(ms, [(i + 1) / len(ms) for i in range(len(ms))], label=name)
    bottom.set_xscale("log")
    bottom.set_xlabel("milliseconds (log)")
    bottom.set_ylabel("fraction at or below")
    bottom.set_title("time to first chunk, inter-chunk gap, task latency")
    bottom.legend()
    bottom.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _title(report: dict[str, Any]) -> str:
    c = report["config"]
    return (
        f"{c.get('model')}: {c.get('concurrency')} in flight, {c.get('clients')} sockets,"
        f" {c.get('idle_clients')} idle; {report['tokens_per_s']:,.0f} tokens/s"
    )
