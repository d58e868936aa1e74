"""One watched task on a node: its live records and its local subscribers, in order.

One coroutine per watched task handles, in order, the live records and the arrival of new
subscribers; a new subscriber is replayed from the history stream after the live channel
is confirmed, so every record is either in the history read or arrives live after it.
Each subscriber keeps the last seq it got, which drops duplicates. A task running in this
process needs no live channel: its records come from the publisher once Redis has them
(engine/stream/local.py), and a replay after the watch is registered for them closes the
window the same way.

A live subscriber never gets a gap: a record that does not continue what it has (records
lost with a Redis that went away) makes the watch re-read the history, which the publisher
keeps complete; only when the history itself has lost them (after `GAP_GIVE_UP_S`) does
delivery go on past the hole. After a Redis outage, and whenever a watch has heard nothing
for `IDLE_CHECK_S`, a task the database says has ended is ended for its subscribers too,
even when Redis lost its terminal record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from db.pool import DATABASE_DOWN
from engine.status import TaskStatus
from engine.stream.history import read_records
from engine.stream.outage import retrying
from engine.stream.records import DONE, EVENTS, SEQUENCED, Record, decode_record

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from engine.metrics import Metrics
    from engine.redis_keys import RedisKeys

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 10.0
GAP_RETRY_S = 0.2  # re-read history this often while a subscriber misses records
GAP_GIVE_UP_S = 5.0  # history has lost them: deliver what there is
IDLE_CHECK_S = 10.0  # a watch that heard nothing this long asks the database


class Subscriber(Protocol):
    """Where a task's events go: a socket, an SSE response."""

    async def send(self, event: str, payload: dict[str, Any]) -> None: ...


@dataclass
class SubscribeResult:
    status: str
    last_seq: int


@dataclass
class Sub:
    subscriber: Subscriber
    last_seq: int
    done: bool = False
    gap_since: float | None = None  # when it first missed a record


class Add:
    def __init__(self, key: str, sub: Sub, fresh: bool = False) -> None:
        self.key = key
        self.sub = sub
        self.fresh = fresh
        self.unwritten = False  # known to have no history yet: nothing to read
        self.result: asyncio.Future[SubscribeResult] = asyncio.get_running_loop().create_future()


class Resync:
    """Re-read history after the pub/sub connection was re-established (messages may be lost)."""


# What a watch's queue carries: a new subscriber, a history re-read, a record from the live
# channel (raw) or from this process (decoded), or a subscriber that left (None).
Item = Add | Resync | Record | str | bytes | None


class WatchHost(Protocol):
    """What a watch needs of the relay that owns it (engine/stream/relay.py implements it):
    the Redis it reads history from, where finished tasks are looked up, and the two calls
    that hand a watch's work back to its owner."""

    redis: Redis
    keys: RedisKeys
    metrics: Metrics

    # a callable attribute (the engine's finished-task loader), not a method
    load_final: Callable[[str], Awaitable[dict[str, Any] | None]]

    def resubmit(self, task_id: str, add: Add) -> None: ...

    def forget(self, watch: TaskWatch) -> None: ...


class TaskWatch:
    """One task watched on this node: where its records come from, and its subscribers here."""

    def __init__(self, relay: WatchHost, task_id: str) -> None:
        self.relay = relay
        self.task_id = task_id
        self.subs: dict[str, Sub] = {}
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.sent = asyncio.Event()  # SUBSCRIBE has gone out (it may wait for the lock)
        self.confirmed = asyncio.Event()
        self.local = False  # records come from this process's publisher, not the channel
        self.listening = False  # subscribed to the live channel
        self.ended_here = False  # this process handed over the terminal record
        self.done_payload: dict[str, Any] | None = None
        self.runner: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    async def run(self) -> None:
        try:
            await self.sent.wait()
            await asyncio.wait_for(self.confirmed.wait(), SUBSCRIBE_TIMEOUT_S)
            while True:
                if not self.queue.empty():
                    await self._handle(self.queue.get_nowait())
                else:
                    try:
                        async with asyncio.timeout(self._patience()):  # no task per message
                            item = await self.queue.get()
                    except TimeoutError:
                        await self._check()
                    else:
                        await self._handle(item)
                if self.queue.empty() and not self.subs:
                    return
        finally:
            self.relay.forget(self)
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if isinstance(item, Add) and not item.result.done():
                    # Arrived after the end: a fresh watch replays it from history.
                    self.relay.resubmit(self.task_id, item)

    def _patience(self) -> float:
        gapped = any(sub.gap_since is not None for sub in self.subs.values())
        return GAP_RETRY_S if gapped else IDLE_CHECK_S

    async def _handle(self, item: Item) -> None:
        if item is None:
            pass
        elif isinstance(item, Add):
            await self._replay(item)
        elif isinstance(item, Resync):
            await self._resync()
        elif isinstance(item, tuple):
            await self._deliver([item], lenient=False)
        else:
            await self._deliver([decode_record(item)], lenient=False)

    async def _check(self) -> None:
        """Nothing arrived for a while: fill a gap from history, or look for a lost end."""
        if not self.subs:
            return
        if any(sub.gap_since is not None for sub in self.subs.values()):
            await self._resync()
        elif await self._final() is not None:
            await self._resync()

    async def _replay(self, add: Add) -> None:
        sub = add.sub
        try:
            status = TaskStatus.RUNNING
            entries = [] if add.unwritten else await self._history(give_up_s=SUBSCRIBE_TIMEOUT_S)
            if not entries and not add.fresh:
                final = await self.relay.load_final(self.task_id)
                if final is not None:
                    # The task may have streamed and ended between the empty read and the
                    # database's answer: history, when there is one now, has every chunk.
                    entries = await self._history(give_up_s=SUBSCRIBE_TIMEOUT_S) or [(DONE, final)]
            known = 0  # the task's last seq as far as history tells
            for kind, payload in entries:
                known = max(known, int(payload.get("seq") or payload.get("last_seq") or 0))
                await self._offer(sub, kind, payload, lenient=True)
            if sub.done and self.done_payload is not None:  # _offer set both
                status = TaskStatus(self.done_payload["status"])
            else:
                self.subs[add.key] = sub
            add.result.set_result(SubscribeResult(status, known))
        except asyncio.CancelledError:
            add.result.cancel()
            raise
        except Exception as exc:  # the caller gets it (an outage, a closed client)
            add.result.set_exception(exc)

    async def _resync(self) -> None:
        """Send what history has beyond each subscriber; end the task from the database if
        history has no end but the task has ended (Redis lost the terminal record)."""
        entries = await self._history()
        await self._deliver(entries, lenient=False)
        if not self.subs or any(kind == DONE for kind, _ in entries):
            return
        final = await self._final()
        if final is not None:
            # Chunks written before the end that the first read missed are there now.
            await self._deliver(await self._history(), lenient=False)
            await self._deliver([(DONE, final)], lenient=True)

    async def _final(self) -> dict[str, Any] | None:
        try:
            return await self.relay.load_final(self.task_id)
        except DATABASE_DOWN as exc:  # asked again on the next check
            log.info("task %s: database unavailable (%s)", self.task_id, type(exc).__name__)
            return None

    async def _history(self, give_up_s: float | None = None) -> list[Record]:
        """The task's history stream, read again until Redis answers."""
        relay = self.relay

        async def read() -> list[Record]:
            return await read_records(relay.redis, relay.keys, self.task_id)

        return await retrying(read, give_up_s=give_up_s)

    async def _deliver(self, entries: list[Record], *, lenient: bool) -> None:
        """Offer the records, in seq order and the end last, to every subscriber."""
        if len(entries) > 1:
            entries = sorted(entries, key=lambda e: (e[0] == DONE, e[1].get("seq", 0)))
        for key, sub in list(self.subs.items()):
            try:
                for kind, payload in entries:
                    await self._offer(sub, kind, payload, lenient=lenient)
            except ConnectionError:  # the client went away
                self.subs.pop(key, None)
            if sub.done:
                self.subs.pop(key, None)

    async def _offer(self, sub: Sub, kind: str, payload: dict[str, Any], *, lenient: bool) -> None:
        """Send one record if it continues what the subscriber has; else note the gap."""
        if sub.done:
            return
        now = self._loop.time()
        patient = not lenient and (sub.gap_since is None or now - sub.gap_since < GAP_GIVE_UP_S)
        if kind in SEQUENCED:
            seq = payload["seq"]
            if seq <= sub.last_seq:
                return
            if seq > sub.last_seq + 1 and patient:
                sub.gap_since = sub.gap_since or now
                return
            sub.gap_since = None
            sub.last_seq = seq
            self.relay.metrics.chunks_emitted.inc()
            await sub.subscriber.send(EVENTS[kind], payload)
        elif kind == DONE:
            if int(payload.get("last_seq") or 0) > sub.last_seq and patient:
                sub.gap_since = sub.gap_since or now
                return
            self.done_payload = payload
            sub.done = True
            sub.gap_since = None
            sub.last_seq = max(sub.last_seq, int(payload.get("last_seq") or 0))
            await sub.subscriber.send("task_done", payload)
