"""Deliver task records from Redis to this node's subscribers: history, then live, no gap.

A node subscribes on Redis only to the live channels of tasks its own subscribers watch.
Per watched task one coroutine handles, in order, the live records and the arrival of new
subscribers; a new subscriber is replayed from the history stream after the live channel
is confirmed, so every record is either in the history read or arrives live after it.
Each subscriber keeps the last seq it got, which drops duplicates.

A pub/sub connection can go silent without an error (a half-open TCP connection through a
NAT or a load balancer): while the node watches tasks, it publishes a probe on a channel
of its own every `probe_s`; a probe that does not come back renews the connection, and the
re-subscription re-reads each task's history for what was missed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from engine.aio import check_cancelled
from engine.keys import Keys
from engine.metrics import Metrics
from engine.stream.history import Record, read_records
from engine.stream.records import CHUNK, DONE, decode_record

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 10.0


class Subscriber(Protocol):
    """Where a task's events go: a socket, an SSE response."""

    async def send(self, event: str, payload: dict[str, Any]) -> None: ...


# Loads the terminal `task_done` payload from the database when history has expired.
FinalLoader = Callable[[str], Awaitable[dict[str, Any] | None]]


@dataclass
class SubscribeResult:
    status: str
    last_seq: int


@dataclass
class _Sub:
    subscriber: Subscriber
    last_seq: int
    done: bool = False


class _Add:
    def __init__(self, key: str, sub: _Sub, fresh: bool = False) -> None:
        self.key = key
        self.sub = sub
        self.fresh = fresh
        self.result: asyncio.Future[SubscribeResult] = asyncio.get_running_loop().create_future()


class _Resync:
    """Re-read history after the pub/sub connection was re-established (messages may be lost)."""


class _TaskWatch:
    """The live channel of one task on this node and its local subscribers."""

    def __init__(self, relay: Relay, task_id: str) -> None:
        self.relay = relay
        self.task_id = task_id
        self.subs: dict[str, _Sub] = {}
        self.queue: asyncio.Queue[_Add | _Resync | str | bytes | None] = asyncio.Queue()
        self.sent = asyncio.Event()  # SUBSCRIBE has gone out (it may wait for the lock)
        self.confirmed = asyncio.Event()
        self.done_payload: dict[str, Any] | None = None
        self.runner: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            await self.sent.wait()
            await asyncio.wait_for(self.confirmed.wait(), SUBSCRIBE_TIMEOUT_S)
            while True:
                item = await self.queue.get()
                if item is None:
                    pass
                elif isinstance(item, _Add):
                    await self._replay(item)
                elif isinstance(item, _Resync):
                    await self._resync()
                else:
                    await self._live(item)
                if self.queue.empty() and (self.done_payload is not None or not self.subs):
                    return
        finally:
            self.relay._forget(self)
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if isinstance(item, _Add) and not item.result.done():
                    # Arrived after the end: a fresh watch replays it from history.
                    self.relay._resubmit(self.task_id, item)

    async def _replay(self, add: _Add) -> None:
        sub = add.sub
        try:
            status = "running"
            entries = await self._history()
            if not entries and not add.fresh:
                final = await self.relay.load_final(self.task_id)
                if final is not None:
                    # The task may have streamed and ended between the empty read and the
                    # database's answer: history, when there is one now, has every chunk.
                    entries = await self._history() or [(DONE, final)]
            known = 0  # the task's last seq as far as history tells
            for kind, payload in entries:
                known = max(known, int(payload.get("seq") or payload.get("last_seq") or 0))
                await self._send(sub, kind, payload)
            if sub.done and self.done_payload is not None:  # _send set both
                status = str(self.done_payload["status"])
            else:
                self.subs[add.key] = sub
            add.result.set_result(SubscribeResult(status, known))
        except BaseException as exc:
            if not add.result.done():
                add.result.set_exception(exc)
            raise

    async def _resync(self) -> None:
        for kind, payload in await self._history():
            for key, sub in list(self.subs.items()):
                await self._send(sub, kind, payload)
                if sub.done:
                    self.subs.pop(key, None)

    async def _history(self) -> list[Record]:
        return await read_records(self.relay.redis, self.relay.keys, self.task_id)

    async def _live(self, raw: str | bytes) -> None:
        kind, payload = decode_record(raw)
        for key, sub in list(self.subs.items()):
            try:
                await self._send(sub, kind, payload)
            except ConnectionError:
                self.subs.pop(key, None)
            if sub.done:
                self.subs.pop(key, None)

    async def _send(self, sub: _Sub, kind: str, payload: dict[str, Any]) -> None:
        if sub.done:
            return
        if kind == CHUNK:
            seq = payload["seq"]
            if seq <= sub.last_seq:
                return
            sub.last_seq = seq
            self.relay.metrics.chunks_emitted.inc()
            await sub.subscriber.send("task_chunk", payload)
        elif kind == DONE:
            self.done_payload = payload
            sub.done = True
            sub.last_seq = max(sub.last_seq, int(payload.get("last_seq") or 0))
            await sub.subscriber.send("task_done", payload)


class Relay:
    """One pub/sub connection per node, routed per task."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        load_final: FinalLoader,
        metrics: Metrics | None = None,
        probe_s: float = 5.0,
    ) -> None:
        self.redis = redis
        self.metrics = metrics or Metrics()
        self.keys = keys
        self.load_final = load_final
        self.probe_s = probe_s
        self.probe_channel = keys.probe_channel(uuid.uuid4().hex)
        self.renewals = 0  # silent subscriptions found and renewed
        self._probe_seen = asyncio.Event()
        self._probe_subscribed = False
        self._pubsub = redis.pubsub()
        self._watches: dict[str, _TaskWatch] = {}
        self._by_channel: dict[str, _TaskWatch] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()  # one pub/sub command at a time on the shared connection
        self._active = asyncio.Event()

    async def subscribe(
        self,
        task_id: str,
        key: str,
        subscriber: Subscriber,
        after_seq: int = 0,
        *,
        fresh: bool = False,
    ) -> SubscribeResult:
        """Send the task's records after `after_seq` to `subscriber`, then live ones, then done.

        Returns once the history is sent and live delivery is in place. `key` names the
        subscription (one per socket and task); subscribing again replaces it. `fresh`: the
        database said the task runs, so an empty history means no chunk yet, not an expired
        one (a terminal record stays in history for its TTL): no database read then.
        """
        add = _Add(key, _Sub(subscriber, after_seq), fresh)
        await self._submit(task_id, add)
        return await add.result

    def unsubscribe(self, task_id: str, key: str) -> None:
        watch = self._watches.get(task_id)
        if watch is not None and watch.subs.pop(key, None) is not None:
            watch.queue.put_nowait(None)  # lets the watch end when it has no subscriber left

    async def _submit(self, task_id: str, add: _Add) -> None:
        watch = self._watches.get(task_id)
        if watch is None:
            watch = _TaskWatch(self, task_id)
            channel = self.keys.live(task_id)
            self._watches[task_id] = watch
            self._by_channel[channel] = watch
            # Queued before any wait: a watch that ends unconfirmed hands `add` on, so an
            # execute under heavy load is late, never left without its ack.
            watch.queue.put_nowait(add)
            watch.runner = asyncio.create_task(watch.run())
            self._runners.add(watch.runner)
            watch.runner.add_done_callback(self._runners.discard)
            try:
                async with self._lock:
                    if not self._probe_subscribed:  # kept across reconnects by redis-py
                        await self._pubsub.subscribe(self.probe_channel)
                        self._probe_subscribed = True
                    await self._pubsub.subscribe(channel)
                watch.sent.set()
                self._active.set()
            except RedisError:
                add.result.cancel()  # answered by the raise: the watch must not hand it on
                self._forget(watch)
                watch.runner.cancel()
                raise
            return
        watch.queue.put_nowait(add)

    def _resubmit(self, task_id: str, add: _Add) -> None:
        task = asyncio.create_task(self._submit(task_id, add))
        self._runners.add(task)
        task.add_done_callback(self._runners.discard)

    def _forget(self, watch: _TaskWatch) -> None:
        if self._watches.get(watch.task_id) is watch:
            del self._watches[watch.task_id]
            channel = self.keys.live(watch.task_id)
            self._by_channel.pop(channel, None)
            unsub = asyncio.create_task(self._unsubscribe_channel(channel))
            self._runners.add(unsub)
            unsub.add_done_callback(self._runners.discard)

    async def _unsubscribe_channel(self, channel: str) -> None:
        if channel in self._by_channel:
            return  # watched again meanwhile
        try:
            async with self._lock:
                await self._pubsub.unsubscribe(channel)
        except RedisError as exc:
            log.warning("unsubscribe failed: %s", type(exc).__name__)

    async def run(self) -> None:
        """Read the pub/sub connection until cancelled, routing each message to its task."""
        prober = asyncio.create_task(self._probe(), name="relay-probe")
        try:
            await self._read()
        finally:
            prober.cancel()
            await asyncio.gather(prober, return_exceptions=True)

    async def _read(self) -> None:
        while True:
            if not self._pubsub.subscribed:
                self._active.clear()
                await self._active.wait()
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                check_cancelled()
                # redis-py reconnects and re-subscribes on the next read; each channel's
                # new confirmation makes its watch re-read history for what was missed.
                log.warning("pub/sub connection lost (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._route(message)

    def _route(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if channel == self.probe_channel:
            if message["type"] == "message":
                self._probe_seen.set()
            return
        watch = self._by_channel.get(channel)
        if watch is None:
            return
        if message["type"] == "subscribe":
            if watch.confirmed.is_set():
                watch.queue.put_nowait(_Resync())
            watch.confirmed.set()
        elif message["type"] == "message":
            watch.queue.put_nowait(message["data"])

    async def _probe(self) -> None:
        """While tasks are watched, check that the subscription still receives."""
        while True:
            await asyncio.sleep(self.probe_s)
            if not self._watches:
                continue
            self._probe_seen.clear()
            try:
                await self.redis.publish(self.probe_channel, "probe")
            except (RedisError, OSError):
                check_cancelled()
                continue  # Redis itself is away: the reader reconnects when it is back
            try:
                await asyncio.wait_for(self._probe_seen.wait(), self.probe_s)
            except TimeoutError:
                log.warning("pub/sub subscription went silent; renewing it")
                self.renewals += 1
                await self._renew()

    async def _renew(self) -> None:
        """Drop the pub/sub connection: the reader's next read reconnects and re-subscribes."""
        connection = self._pubsub.connection
        if connection is not None:
            await connection.disconnect()

    async def close(self) -> None:
        for task in list(self._runners):
            task.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
