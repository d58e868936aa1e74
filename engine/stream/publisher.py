"""Write coalesced chunks to Redis in batches (what goes into a chunk: coalescer.py).

Every running task appends text; one loop per process flushes all of it each window:
one pipeline carrying, per task, the chunk for the history stream (XADD) and for live
delivery (PUBLISH, or SPUBLISH on a cluster: engine/stream/live.py). The window widens with
the number of streaming tasks, and a slow flush makes the next window start later, so
batches grow with load and shrink back when idle. Once Redis has taken a flush, its chunks
are also handed, in memory and in order, to this process's own subscribers
(engine/stream/local.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from engine.aio import check_cancelled
from engine.errors import ServiceUnavailable
from engine.metrics import Metrics
from engine.redis_batch import send
from engine.redis_keys import RedisKeys
from engine.stream import records
from engine.stream.coalescer import REASONING, CallRef, Chunk, Coalescer
from engine.stream.live import publish_live
from engine.stream.local import LocalFeed
from engine.stream.outage import REDIS_DOWN, Outage, retrying
from engine.stream.records import CHUNK, TOOL_CALL, chunk_payload, encode_record, tool_call_payload

log = logging.getLogger(__name__)

RUNNING_TTL_S = 24 * 3600  # a history stream never outlives a day, even if its task is lost
MARKER_TTL_S = 3600  # refreshed by every flush; gone means Redis lost its data
MAX_BUFFERED_BYTES = 64 * 1024 * 1024  # text held while Redis is away, for all tasks


@dataclass
class _Pending:
    task_id: str
    in_flight: bool = False
    flushed: asyncio.Event = field(default_factory=asyncio.Event)
    records: list[str] = field(default_factory=list)  # published, to rewrite a lost history


class ChunkPublisher:
    """Owns the flush loop; tasks call `append` per delta and `drain` at their end."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        window_s: float,
        history_maxlen: int,
        metrics: Metrics | None = None,
        max_buffered_bytes: int = MAX_BUFFERED_BYTES,
        local: LocalFeed | None = None,
    ) -> None:
        self._redis = redis
        self.local = local or LocalFeed()
        self._metrics = metrics or Metrics()
        self._keys = keys
        self._coalescer = Coalescer(window_s)
        self._maxlen = history_maxlen
        self._tasks: dict[str, _Pending] = {}
        self._wake = asyncio.Event()
        self._marker = keys.publisher_marker(uuid.uuid4().hex)
        self._writing = asyncio.Lock()  # a flush and a history rewrite never interleave
        self._max_buffered = max_buffered_bytes
        self._abandoned = False  # shutting down in a hurry: stop waiting for Redis
        self._stopped = False  # the flush loop has ended
        self.outage = Outage("Redis (chunk flush)", log)
        self.flushes = 0
        self.rewrites = 0  # histories written again after Redis lost its data

    def open(self, task_id: str) -> None:
        self._tasks[task_id] = _Pending(task_id)
        self._coalescer.open(task_id)

    def append(self, task_id: str, text: str) -> None:
        """Queue `text` for the task's next chunk. No I/O here."""
        if self._coalescer.buffered > self._max_buffered:
            raise ServiceUnavailable("the stream store is unavailable; try again")
        if self._coalescer.append(task_id, text):
            self._tasks[task_id].flushed.clear()
            self._wake.set()

    def append_call(self, task_id: str, call: CallRef, arguments: str) -> None:
        """Queue a piece of a tool call, in order with the text. No I/O here."""
        if self._coalescer.buffered > self._max_buffered:
            raise ServiceUnavailable("the stream store is unavailable; try again")
        if self._coalescer.append_call(task_id, call, arguments):
            self._tasks[task_id].flushed.clear()
            self._wake.set()

    def append_reasoning(self, task_id: str, text: str) -> None:
        """Queue a piece of the model's reasoning, in order with the text. No I/O here."""
        if self._coalescer.buffered > self._max_buffered:
            raise ServiceUnavailable("the stream store is unavailable; try again")
        if self._coalescer.append_call(task_id, REASONING, text):
            self._tasks[task_id].flushed.clear()
            self._wake.set()

    async def drain(self, task_id: str) -> int:
        """Wait until everything appended for the task is in Redis; return its last seq.

        Returns at once, with what did reach Redis, once the flush loop has stopped; after
        `abandon`, a flush that fails is not retried."""
        pending = self._tasks[task_id]
        queued = self._coalescer.is_queued
        while (queued(task_id) or pending.in_flight) and not self._stopped:
            await pending.flushed.wait()
        if pending.records and not self._stopped:
            await self._verify()  # Redis may have lost it since the last flush
        del self._tasks[task_id]
        return self._coalescer.close(task_id)

    def abandon(self) -> None:
        """Stop waiting for Redis (a shutdown in a hurry): a flush that fails gives up."""
        self._abandoned = True

    def _gone(self) -> bool:
        return self._abandoned or self._stopped

    def _release_all(self) -> None:
        for pending in self._tasks.values():
            pending.flushed.set()

    async def run(self) -> None:
        """The flush loop; runs until cancelled."""
        try:
            await retrying(lambda: self._redis.set(self._marker, "1", ex=MARKER_TTL_S))
            while True:
                # A cancel can be swallowed inside a Redis call (seen as a hang at shutdown
                # on Python 3.11); once this task was asked to stop, it never waits again.
                check_cancelled()
                await self._wake.wait()
                window = self._coalescer.window_s()
                if window:
                    await asyncio.sleep(window)
                self._wake.clear()
                await self._flush(self._coalescer.take())
        finally:
            self._stopped = True
            self._release_all()

    async def _flush(self, chunks: list[Chunk]) -> None:
        # The text is taken now: deltas appended while the pipeline is in flight go to the
        # next one.
        records, payloads = [], []
        for chunk in chunks:
            pending = self._tasks[chunk.task_id]
            pending.in_flight = True
            kind, payload = _payload(chunk)
            payloads.append((kind, payload))
            records.append((pending, encode_record(kind, payload)))
        async with self._writing:
            replies = await self._execute(records)
            if replies is None:  # abandoned: the text is only in the final record
                self._coalescer.dropped(chunks)
            else:
                self._coalescer.published(chunks)
                for pending, record in records:
                    pending.records.append(record)
                self._hand_over(payloads)
                if not replies[0]:
                    await self._rewrite()
        self.flushes += 1
        self._metrics.chunks_published.inc(len(records))
        self._metrics.flush_batch.observe(len(records))
        for pending, _ in records:
            pending.in_flight = False
            if not self._coalescer.is_queued(pending.task_id):
                pending.flushed.set()

    def _hand_over(self, payloads: list[tuple[str, dict[str, Any]]]) -> None:
        """This process's subscribers get the chunks now that they are in the histories:
        a subscriber that starts watching after this reads them there."""
        for kind, payload in payloads:
            self.local.hand(payload["task_id"], kind, payload)

    async def _execute(self, records: list[tuple[_Pending, str]]) -> list[Any] | None:
        """One pipeline with the batch, retried until Redis takes it; None if abandoned."""
        delay = 0.05
        while True:
            # No MULTI/EXEC: one connection keeps the order (XADD before PUBLISH of each
            # record), a reader that sees a record in both places drops it by seq, and
            # skipping the transaction halves the replies to parse.
            pipe = self._redis.pipeline(transaction=False)
            pipe.expire(self._marker, MARKER_TTL_S)  # 0: Redis lost its data
            for pending, record in records:
                history = self._keys.history(pending.task_id)
                pipe.xadd(history, {"r": record}, maxlen=self._maxlen, approximate=True)
                if not pending.records:  # the task's first chunk
                    pipe.expire(history, RUNNING_TTL_S)
                publish_live(pipe, self._keys.live(pending.task_id), record)
            try:
                with self._metrics.redis_publish.time():
                    replies: list[Any] = await pipe.execute()
            except (RedisError, OSError) as exc:
                check_cancelled()
                self.outage.failed(exc)
                if self._abandoned:
                    log.warning("%d chunk(s) not published: shutting down", len(records))
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self.outage.ok()
            return replies

    async def _verify(self) -> None:
        """Write the histories again if Redis lost its data since the last flush.

        The check runs beside the flushes, not under their lock: when many tasks end at
        once, their checks would otherwise queue in front of the next flush, one round trip
        each, and hold back every other task's chunks. Only a rewrite takes the lock."""
        try:
            if await self._marker_alive():
                return
            async with self._writing:
                if not await self._marker_alive():  # else a flush or a check rewrote them
                    await self._rewrite()
        except REDIS_DOWN:
            log.warning("histories not checked: shutting down")

    async def _marker_alive(self) -> bool:
        """Refresh the marker; False when Redis lost it (and with it, its data)."""
        alive = await retrying(
            # the checks of tasks ending at once go in one pipeline (engine/redis_batch.py)
            lambda: send(self._redis, "EXPIRE", self._marker, MARKER_TTL_S),
            outage=self.outage,
            stop=self._gone,
        )
        return bool(alive)

    async def _rewrite(self) -> None:
        """Redis lost its data: write every running task's history again, in order."""
        tasks = [p for p in self._tasks.values() if p.records]
        log.warning("Redis lost its data; writing the history of %d task(s) again", len(tasks))

        async def write() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for pending in tasks:
                history = self._keys.history(pending.task_id)
                pipe.delete(history)
                for record in pending.records:
                    pipe.xadd(history, {"r": record}, maxlen=self._maxlen, approximate=True)
                pipe.expire(history, RUNNING_TTL_S)
            pipe.set(self._marker, "1", ex=MARKER_TTL_S)
            await pipe.execute()

        try:
            await retrying(write, outage=self.outage, stop=self._gone)
        except REDIS_DOWN:
            log.warning("histories not written again: shutting down")
            return
        self.rewrites += 1


def _payload(chunk: Chunk) -> tuple[str, dict[str, Any]]:
    """The record kind and client payload of a chunk, a tool-call piece or reasoning."""
    call = chunk.call
    if chunk.reasoning:
        return records.REASONING, records.reasoning_payload(chunk.task_id, chunk.seq, chunk.text)
    if call is None:
        return CHUNK, chunk_payload(chunk.task_id, chunk.seq, chunk.text)
    payload = tool_call_payload(
        chunk.task_id, chunk.seq, call.index, call.call_id, call.name, chunk.text
    )
    return TOOL_CALL, payload
