"""Coalesce provider deltas into chunks and write them to Redis in batches.

Every running task appends text; one loop per process flushes all of it each window:
one pipeline carrying, per task, the chunk for the history stream (XADD) and
for live delivery (PUBLISH). Under load a flush takes longer, so the window grows with
load by itself and shrinks back when idle.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from engine.aio import check_cancelled
from engine.keys import Keys
from engine.metrics import Metrics
from engine.stream.records import encode_chunk

log = logging.getLogger(__name__)

RUNNING_TTL_S = 24 * 3600  # a history stream never outlives a day, even if its task is lost


@dataclass
class _Pending:
    task_id: str
    parts: list[str] = field(default_factory=list)
    seq: int = 0
    in_flight: bool = False
    flushed: asyncio.Event = field(default_factory=asyncio.Event)


class ChunkPublisher:
    """Owns the flush loop; tasks call `append` per delta and `drain` at their end."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        window_s: float,
        history_maxlen: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._redis = redis
        self._metrics = metrics or Metrics()
        self._keys = keys
        self._window_s = window_s
        self._maxlen = history_maxlen
        self._tasks: dict[str, _Pending] = {}
        self._dirty: dict[str, _Pending] = {}
        self._wake = asyncio.Event()
        self.flushes = 0

    def open(self, task_id: str) -> None:
        self._tasks[task_id] = _Pending(task_id)

    def append(self, task_id: str, text: str) -> None:
        """Queue `text` for the task's next chunk. No I/O here."""
        pending = self._tasks[task_id]
        pending.parts.append(text)
        if task_id not in self._dirty:
            self._dirty[task_id] = pending
            pending.flushed.clear()
            self._wake.set()

    async def drain(self, task_id: str) -> int:
        """Wait until everything appended for the task is in Redis; return its last seq."""
        pending = self._tasks[task_id]
        while task_id in self._dirty or pending.in_flight:
            await pending.flushed.wait()
        del self._tasks[task_id]
        return pending.seq

    async def run(self) -> None:
        """The flush loop; runs until cancelled."""
        while True:
            # A cancel can be swallowed inside a Redis call (seen as a hang at shutdown on
            # Python 3.11); once this task was asked to stop, it never waits again.
            check_cancelled()
            await self._wake.wait()
            if self._window_s:
                await asyncio.sleep(self._window_s)
            self._wake.clear()
            batch, self._dirty = self._dirty, {}
            await self._flush(batch)

    async def _flush(self, batch: dict[str, _Pending]) -> None:
        # Take the text now: deltas appended while the pipeline is in flight go to the next one.
        records = []
        for task_id, pending in batch.items():
            text = "".join(pending.parts)
            pending.parts = []
            pending.in_flight = True
            records.append((pending, encode_chunk(task_id, pending.seq + 1, text)))
        delay = 0.05
        while True:
            # No MULTI/EXEC: one connection keeps the order (XADD before PUBLISH of each
            # record), a reader that sees a record in both places drops it by seq, and
            # skipping the transaction halves the replies to parse.
            pipe = self._redis.pipeline(transaction=False)
            for pending, record in records:
                history = self._keys.history(pending.task_id)
                pipe.xadd(history, {"r": record}, maxlen=self._maxlen, approximate=True)
                if pending.seq == 0:
                    pipe.expire(history, RUNNING_TTL_S)
                pipe.publish(self._keys.live(pending.task_id), record)
            try:
                with self._metrics.redis_publish.time():
                    await pipe.execute()
                break
            except RedisError as exc:
                check_cancelled()
                log.warning("chunk flush failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.flushes += 1
        self._metrics.chunks_published.inc(len(records))
        self._metrics.flush_batch.observe(len(records))
        for pending, _ in records:
            pending.seq += 1
            pending.in_flight = False
            if pending.task_id not in self._dirty:
                pending.flushed.set()
