"""Pure bookkeeping of a bench run: per-task traces, per-process results, the merged report.

No I/O here: the load generator fills `TaskTrace`s, each process folds them into a
`ProcessResult` (picklable, sent to the parent), and `build_report` merges those.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

BUCKET_S = 0.25  # resolution of the throughput timeline


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), nearest rank on sorted data; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class TaskTrace:
    """What one client saw of one task. Times are `time.monotonic()` (system-wide on Linux)."""

    sent: float
    task_id: str | None = None
    chunks: list[tuple[float, int, str]] = field(default_factory=list)  # (at, seq, text)
    done: dict[str, Any] | None = None
    done_at: float | None = None
    events_after_done: int = 0
    dones: int = 0
    anomalies: list[str] = field(default_factory=list)  # what the client repaired, by kind
    error: str | None = None  # a protocol error code, or a bench-side one

    def chunk(self, at: float, seq: int, text: str) -> None:
        if self.done is not None:
            self.events_after_done += 1
        self.chunks.append((at, seq, text))

    def finish(self, at: float, payload: dict[str, Any]) -> None:
        self.dones += 1
        if self.done is None:
            self.done, self.done_at = payload, at

    def intact(self) -> bool:
        """Contiguous seq from 1, text equals the chunks, done once and last, and nothing
        the client had to repair (a repeat, a gap, chunks only task_done had)."""
        if self.done is None or self.anomalies:
            return False
        seqs = [seq for _, seq, _ in self.chunks]
        return (
            seqs == list(range(1, len(seqs) + 1))
            and self.done.get("last_seq") == len(seqs)
            and "".join(text for _, _, text in self.chunks) == self.done.get("text")
            and self.dones == 1
            and self.events_after_done == 0
        )

    def outcome(self) -> str | None:
        """None for a completed, intact task; else the error code it counts under."""
        if self.error is not None:
            return self.error
        assert self.done is not None
        if self.done.get("status") != "completed":
            err = self.done.get("error") or {}
            return str(err.get("code") or self.done.get("status"))
        if not self.intact():
            return "stream_broken"
        return None


@dataclass
class ProcessResult:
    """One load process's share of the run, in a form cheap to pickle and merge."""

    tasks: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    intact: int = 0
    tokens: int = 0
    chunks: int = 0
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    first_sent: float = math.inf
    last_done: float = 0.0
    timeline_tokens: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    timeline_chunks: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    connect_errors: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0  # the load process's own CPU while it ran tasks

    def add(self, trace: TaskTrace) -> None:
        self.tasks += 1
        self.first_sent = min(self.first_sent, trace.sent)
        code = trace.outcome()
        if code is not None:
            self.errors[code] += 1
            return
        assert trace.done is not None and trace.done_at is not None
        self.intact += 1
        self.last_done = max(self.last_done, trace.done_at)
        usage = trace.done.get("usage") or {}
        tokens = int(usage.get("output_tokens") or 0)
        self.tokens += tokens
        self.chunks += len(trace.chunks)
        self.latency.append(trace.done_at - trace.sent)
        if trace.chunks:
            self.ttft.append(trace.chunks[0][0] - trace.sent)
        self.gaps.extend(b[0] - a[0] for a, b in zip(trace.chunks, trace.chunks[1:], strict=False))
        # Spread the task's tokens over its chunks by text length, onto the timeline.
        chars = sum(len(text) for _, _, text in trace.chunks) or 1
        for at, _, text in trace.chunks:
            bucket = int(at / BUCKET_S)
            self.timeline_tokens[bucket] += tokens * len(text) / chars
            self.timeline_chunks[bucket] += 1

    def merge(self, other: ProcessResult) -> None:
        self.tasks += other.tasks
        self.errors.update(other.errors)
        self.connect_errors.update(other.connect_errors)
        self.cpu_s += other.cpu_s
        self.intact += other.intact
        self.tokens += other.tokens
        self.chunks += other.chunks
        self.ttft.extend(other.ttft)
        self.gaps.extend(other.gaps)
        self.latency.extend(other.latency)
        self.first_sent = min(self.first_sent, other.first_sent)
        self.last_done = max(self.last_done, other.last_done)
        for b, v in other.timeline_tokens.items():
            self.timeline_tokens[b] += v
        for b, n in other.timeline_chunks.items():
            self.timeline_chunks[b] += n


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def _dist(values: list[float], qs: tuple[int, ...]) -> dict[str, float | None]:
    return {f"p{q}": _ms(percentile(values, q)) for q in qs}


def build_report(
    result: ProcessResult, config: dict[str, Any], server: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The report printed as a table and written by `--json`."""
    elapsed = max(result.last_done - result.first_sent, 1e-9) if result.intact else 0.0
    rate = (lambda n: round(n / elapsed, 1)) if elapsed else (lambda n: 0.0)
    start = int(result.first_sent / BUCKET_S) if result.tasks else 0
    timeline = [
        {
            "t": round((b - start) * BUCKET_S, 3),
            "tokens_per_s": round(result.timeline_tokens[b] / BUCKET_S, 1),
            "chunks_per_s": round(result.timeline_chunks.get(b, 0) / BUCKET_S, 1),
        }
        for b in sorted(result.timeline_tokens)
    ]
    return {
        "config": config,
        "tasks": result.tasks,
        "completed_intact": result.intact,
        "errors": dict(result.errors),
        "connect_errors": dict(result.connect_errors),
        "all_streams_intact": result.intact == result.tasks and result.tasks > 0,
        "elapsed_s": round(elapsed, 3),
        "tokens": result.tokens,
        "chunks": result.chunks,
        "tasks_per_s": rate(result.intact),
        "tokens_per_s": rate(result.tokens),
        "chunks_per_s": rate(result.chunks),
        "ttft_ms": _dist(result.ttft, (50, 95, 99)),
        "gap_ms": _dist(result.gaps, (50, 99)),
        "latency_ms": _dist(result.latency, (50, 99)),
        "load_cpu_us_per_chunk": (
            round(result.cpu_s / result.chunks * 1e6, 1) if result.chunks else None
        ),
        "server": server or {},
        "timeline": timeline,
        # Raw samples for the plot; dropped from the JSON file when very large.
        "_samples": {"ttft": result.ttft, "gap": result.gaps, "latency": result.latency},
    }
