"""Read a server's `GET /metrics` and derive the figures the bench report shows."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Snapshot:
    """Sums of the samples the report needs; None when the server exposes no /metrics."""

    cpu_s: float
    rss_bytes: float
    sockets: float
    pg_queries: float
    tasks: float
    tokens: float
    chunks_emitted: float


MIN_SOCKETS_FOR_MEMORY = 500

_WANTED = {
    "process_cpu_seconds_total": "cpu_s",
    "process_resident_memory_bytes": "rss_bytes",
    "promptrelay_sockets_connected": "sockets",
    "promptrelay_pg_queries_total": "pg_queries",
    "promptrelay_tasks_total": "tasks",
    "promptrelay_tokens_relayed_total": "tokens",
    "promptrelay_chunks_emitted_total": "chunks_emitted",
}


def parse(text: str) -> Snapshot:
    values = dict.fromkeys(_WANTED.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            field = _WANTED.get(sample.name)
            if field == "pg_queries" and sample.labels.get("source") == "background":
                continue  # the node's own loops (sweeper, auth re-check), not the tasks'
            if field is not None:
                values[field] += sample.value
    return Snapshot(**values)


def scrape(url: str, timeout_s: float = 30.0) -> Snapshot | None:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=timeout_s) as resp:
            return parse(resp.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def server_figures(
    before: Snapshot | None, connected: Snapshot | None, after: Snapshot | None
) -> dict[str, float | None]:
    """Per-task Postgres statements, CPU per 1,000 tokens, memory per socket (from the server)."""
    if before is None or connected is None or after is None:
        return {}
    tasks = after.tasks - connected.tasks
    tokens = after.tokens - connected.tokens
    sockets = connected.sockets - before.sockets
    cpu = after.cpu_s - connected.cpu_s
    return {
        "pg_statements_per_task": round((after.pg_queries - connected.pg_queries) / tasks, 3)
        if tasks
        else None,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1k_tokens": round(cpu / tokens * 1000, 4) if tokens else None,
        # per task: what a burst of short tasks costs (execute, rows, quota, finalize)
        "cpu_ms_per_task": round(cpu / tasks * 1000, 3) if tasks else None,
        "sockets_opened": sockets,
        # Resident memory moves in pages and allocator arenas: only many sockets tell.
        "rss_kb_per_socket": round((connected.rss_bytes - before.rss_bytes) / sockets / 1024, 1)
        if sockets >= MIN_SOCKETS_FOR_MEMORY
        else None,
        "rss_mb_before": round(before.rss_bytes / 2**20, 1),
        "rss_mb_connected": round(connected.rss_bytes / 2**20, 1),
        "rss_mb_end": round(after.rss_bytes / 2**20, 1),
        "tasks_ended": tasks,
        "tokens_relayed": tokens,
        "chunks_emitted": after.chunks_emitted - connected.chunks_emitted,
    }
