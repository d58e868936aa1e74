"""Prometheus metrics of one node, in a registry of its own (several apps may share a process).

Observations are taken at a few points, never per token: the runner at a task's end, the
publisher per flush, the relay per emit, the socket layer per connect and error ack, the
database pool per query.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

# Seconds; streaming latencies span a few milliseconds (simulated) to minutes (long answers).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_IO_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

QUOTA_CODES = frozenset({"quota_exceeded", "rate_limited"})


class Metrics:
    """Every metric the server exports, registered in `self.registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # CPU seconds, resident memory and open fds of this process.
        ProcessCollector(registry=r)
        self.sockets_connected = Gauge(
            "promptrelay_sockets_connected", "Socket.IO connections open on this node", registry=r
        )
        self.tasks = Counter(
            "promptrelay_tasks",
            "Tasks ended on this node, by status and provider",
            ["status", "provider"],
            registry=r,
        )
        self.tasks_running = Gauge(
            "promptrelay_tasks_running", "Tasks streaming on this node", registry=r
        )
        self.tokens = Counter(
            "promptrelay_tokens_relayed",
            "Output tokens of ended tasks (usage)",
            ["provider"],
            registry=r,
        )
        self.chunks_published = Counter(
            "promptrelay_chunks_published", "Chunks written to Redis (history and live)", registry=r
        )
        self.chunks_emitted = Counter(
            "promptrelay_chunks_emitted", "task_chunk events sent to subscribers", registry=r
        )
        self.ttft = Histogram(
            "promptrelay_time_to_first_token_seconds",
            "From the provider call to its first token",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.task_latency = Histogram(
            "promptrelay_task_latency_seconds",
            "From the provider call to the task's end",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.task_failures = Counter(
            "promptrelay_task_failures",
            "Tasks that failed, by provider, error code and whose fault it was"
            " (provider, service, internal, client)",
            ["provider", "code", "fault"],
            registry=r,
        )
        self.redis_publish = Histogram(
            "promptrelay_redis_publish_seconds",
            "One chunk flush (MULTI/EXEC pipeline)",
            buckets=_IO_BUCKETS,
            registry=r,
        )
        self.flush_batch = Histogram(
            "promptrelay_flush_batch_chunks",
            "Chunks per Redis flush",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
            registry=r,
        )
        self.pg_finalize = Histogram(
            "promptrelay_pg_finalize_seconds",
            "The finalize statement of a task",
            buckets=_IO_BUCKETS,
            registry=r,
        )
        self.pg_queries = Counter(
            "promptrelay_pg_queries",
            "Postgres round trips (statements) made by this node",
            registry=r,
        )
        self.pool_size = Gauge(
            "promptrelay_pg_pool_connections",
            "Postgres pool connections, by state",
            ["state"],
            registry=r,
        )
        self.rejections = Counter(
            "promptrelay_quota_rejections",
            "Requests refused with quota_exceeded or rate_limited",
            ["code"],
            registry=r,
        )

    def watch_pool(self, size: Callable[[], int], idle: Callable[[], int]) -> None:
        """Report the pool's size and idle connections when scraped."""
        self.pool_size.labels("open").set_function(lambda: float(size()))
        self.pool_size.labels("idle").set_function(lambda: float(idle()))
        self.pool_size.labels("in_use").set_function(lambda: float(size() - idle()))

    def count_query(self, _record: object = None) -> None:
        """asyncpg query-logger callback: one statement ran."""
        self.pg_queries.inc()

    def error_code(self, code: str) -> None:
        """An error answered to a client (ack or HTTP); quota refusals are counted."""
        if code in QUOTA_CODES:
            self.rejections.labels(code).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
