"""Deliver task records from Redis to this node's subscribers: history, then live, no gap.

A node subscribes on Redis only to the live channels of tasks its own subscribers watch,
all on one pub/sub connection, and routes each message to the task's watch
(engine/stream/watch.py: the per-task delivery, in order and without gaps). After an
outage, redis-py reconnects and re-subscribes; each channel's new confirmation makes its
watch re-read history for what was missed. The outage and the recovery are logged once.

A task that runs in this process needs no live channel: the publisher and `publish_done`
hand each record over once Redis has taken it (engine/stream/local.py, `deliver`), and its
watch never subscribes. The replay from history closes the window as a confirmation does:
the watch is registered for the records before the replay reads, and a record handed over
before that was in the history already. When the runner ends without handing over the
terminal record (a sweeper or a parked finalize wrote it, or nobody yet), the watch
subscribes after all, and the confirmation re-reads the history (`Resync`).

A pub/sub connection can go silent without an error (a half-open TCP connection through a
NAT or a load balancer): while the node watches tasks, it publishes a probe on a channel
of its own every `probe_s`; a probe that does not come back renews the connection, and the
re-subscription re-reads each task's history for what was missed.

On a Redis Cluster the live channels and the probe are sharded channels (SSUBSCRIBE, one
connection per shard, engine/stream/live.py); redis-py moves a channel to the new owner of
its slot after a failover or a migration, and the new confirmation re-reads the history.
After a migration, Redis unsubscribes the channels of the moved slot itself: the relay then
has the client read the slot owners again, which is what makes redis-py move them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from engine.aio import check_cancelled, close_pubsub
from engine.metrics import Metrics
from engine.redis_keys import RedisKeys
from engine.stream.live import publish_live, sharded
from engine.stream.local import LocalFeed
from engine.stream.outage import REDIS_DOWN, Outage
from engine.stream.records import DONE, Record
from engine.stream.watch import Add, Resync, Sub, Subscriber, SubscribeResult, TaskWatch

log = logging.getLogger(__name__)

# Loads the terminal `task_done` payload from the database when history has expired.
FinalLoader = Callable[[str], Awaitable[dict[str, Any] | None]]

__all__ = ["FinalLoader", "Relay", "SubscribeResult", "Subscriber"]


class Relay:
    """One pub/sub connection per node, routed per task."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        load_final: FinalLoader,
        metrics: Metrics | None = None,
        probe_s: float = 5.0,
        local: LocalFeed | None = None,
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
        self._sharded = sharded(redis)
        self._watches: dict[str, TaskWatch] = {}
        self._by_channel: dict[str, TaskWatch] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()  # one pub/sub command at a time on the shared connection
        self._active = asyncio.Event()
        self._closed = False
        self._refreshing = False  # the cluster's slot owners are being read again
        self.outage = Outage("Redis (relay)", log)
        self.local = local or LocalFeed()
        self.local.attach(self)

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
        add = Add(key, Sub(subscriber, after_seq), fresh)
        await self._submit(task_id, add)
        return await add.result

    def unsubscribe(self, task_id: str, key: str) -> None:
        watch = self._watches.get(task_id)
        if watch is not None and watch.subs.pop(key, None) is not None:
            watch.queue.put_nowait(None)  # lets the watch end when it has no subscriber left

    def watchers(self, task_id: str) -> int:
        """How many subscriptions of this node follow the task."""
        watch = self._watches.get(task_id)
        return 0 if watch is None else len(watch.subs)

    def delivers_to(self, task_id: str, key: str) -> bool:
        """Whether the subscription `key` of the task is still live (its done not sent)."""
        watch = self._watches.get(task_id)
        return watch is not None and key in watch.subs

    async def _submit(self, task_id: str, add: Add) -> None:
        watch = self._watches.get(task_id)
        if watch is not None:
            self._queue(watch, add)
            return
        watch = TaskWatch(self, task_id)
        self._watches[task_id] = watch
        # A task running here: from now on `deliver` queues its records, behind `add`.
        watch.local = self.local.runs(task_id)
        # Queued before any wait: a watch that ends unconfirmed hands `add` on, so an
        # execute under heavy load is late, never left without its ack.
        self._queue(watch, add)
        watch.runner = asyncio.create_task(watch.run())
        self._runners.add(watch.runner)
        watch.runner.add_done_callback(self._ended)
        if watch.local:  # no channel to confirm
            watch.sent.set()
            watch.confirmed.set()
            return
        try:
            await self._listen(watch)
            watch.sent.set()
        except REDIS_DOWN as exc:
            add.result.set_exception(exc)  # the subscriber gets it; the watch ends
            self.forget(watch)
            watch.runner.cancel()

    def _queue(self, watch: TaskWatch, add: Add) -> None:
        # The records of a task running here that were handed over before now are in the
        # history the replay reads. A fresh execute's task has none yet, nor a history.
        add.unwritten = watch.local and add.fresh and self.local.unwritten(watch.task_id)
        watch.queue.put_nowait(add)

    async def _listen(self, watch: TaskWatch) -> None:
        """Subscribe to the watch's live channel; its confirmation goes to the watch."""
        channel = self.keys.live(watch.task_id)
        async with self._lock:
            if self._watches.get(watch.task_id) is not watch:
                return  # ended while waiting for the lock
            self._by_channel[channel] = watch
            watch.listening = True
            if not self._probe_subscribed:  # kept across reconnects by redis-py
                await self._subscribe(self.probe_channel)
                self._probe_subscribed = True
            await self._subscribe(channel)
        self._active.set()

    def deliver(self, task_id: str, record: Record) -> None:
        """A record of a task running in this process, just written to Redis (LocalFeed)."""
        watch = self._watches.get(task_id)
        if watch is not None and watch.local:
            watch.queue.put_nowait(record)
            if record[0] == DONE:
                watch.ended_here = True

    def finished_here(self, task_id: str) -> None:
        """The task's runner in this process has ended (LocalFeed)."""
        watch = self._watches.get(task_id)
        if watch is None or not watch.local or watch.ended_here or self._closed:
            return
        # Its terminal record comes from elsewhere: a sweeper, a parked finalize, or a
        # runner that failed to write it. Listen on the channel; the confirmation finds
        # the watch confirmed and re-reads the history (Resync), the database if need be.
        watch.local = False
        self._own(self._listen_after_all(watch))

    async def _listen_after_all(self, watch: TaskWatch) -> None:
        try:
            await self._listen(watch)
        except REDIS_DOWN as exc:
            check_cancelled()
            # The watch's idle check asks the database; its history re-read waits for Redis.
            log.info("task %s: live channel not subscribed (%s)", watch.task_id, type(exc).__name__)

    def _own(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._runners.add(task)
        task.add_done_callback(self._ended)

    def resubmit(self, task_id: str, add: Add) -> None:
        """Hand a subscriber that arrived after its watch ended to a fresh watch."""
        self._own(self._submit(task_id, add))

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._runners.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a task watch failed", exc_info=task.exception())

    def forget(self, watch: TaskWatch) -> None:
        """A watch has ended: stop routing its channel and unsubscribe from it."""
        if self._watches.get(watch.task_id) is watch:
            del self._watches[watch.task_id]
            if watch.listening:
                channel = self.keys.live(watch.task_id)
                self._by_channel.pop(channel, None)
                self._own(self._unsubscribe_channel(channel))

    async def _unsubscribe_channel(self, channel: str) -> None:
        if channel in self._by_channel:
            return  # watched again meanwhile
        try:
            async with self._lock:
                if self._sharded:
                    await self._pubsub.sunsubscribe(channel)
                else:
                    await self._pubsub.unsubscribe(channel)
        except RedisError as exc:
            log.info("unsubscribe failed: %s", type(exc).__name__)

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
                message = await self._next_message()
            except (RedisError, OSError) as exc:
                check_cancelled()
                # redis-py reconnects and re-subscribes on the next read; each channel's
                # new confirmation makes its watch re-read history for what was missed.
                self.outage.failed(exc)
                await asyncio.sleep(0.2)
                continue
            self.outage.ok()
            if message is not None:
                self._route(message)

    def _route(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if channel == self.probe_channel:
            if message["type"] in ("message", "smessage"):
                self._probe_seen.set()
            return
        watch = self._by_channel.get(channel)
        if watch is None:
            return
        if message["type"] == "sunsubscribe":  # not ours: its slot moved to another master
            self._own(self._follow_slot_move())
        elif message["type"] in ("subscribe", "ssubscribe"):
            if watch.confirmed.is_set():
                watch.queue.put_nowait(Resync())
            watch.confirmed.set()
        elif message["type"] in ("message", "smessage"):
            watch.queue.put_nowait(message["data"])

    async def _probe(self) -> None:
        """While tasks are watched, check that the subscription still receives."""
        while True:
            await asyncio.sleep(self.probe_s)
            if not self._by_channel:  # no watch listens on a channel
                continue
            self._probe_seen.clear()
            try:
                await publish_live(self.redis, self.probe_channel, "probe")
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
        shards = getattr(self._pubsub, "node_pubsub_mapping", {})  # a cluster's, per node
        for pubsub in [self._pubsub, *shards.values()]:
            if pubsub.connection is not None:
                await pubsub.connection.disconnect()

    async def _follow_slot_move(self) -> None:
        """Learn the cluster's new slot owners: redis-py then subscribes the channels there,
        and each confirmation re-reads its task's history for what was missed."""
        nodes = getattr(self.redis, "nodes_manager", None)
        if nodes is None or self._refreshing:
            return
        self._refreshing = True
        try:
            await nodes.initialize()
        except (RedisError, OSError) as exc:
            check_cancelled()
            log.info("slot owners not refreshed (%s)", type(exc).__name__)
        finally:
            self._refreshing = False

    async def _subscribe(self, channel: str) -> None:
        if self._sharded:
            await self._pubsub.ssubscribe(channel)
        else:
            await self._pubsub.subscribe(channel)

    async def _next_message(self) -> dict[str, Any] | None:
        if self._sharded:
            message: dict[str, Any] | None = await self._pubsub.get_sharded_message(timeout=1.0)
            return message
        plain: dict[str, Any] | None = await self._pubsub.get_message(timeout=1.0)
        return plain

    async def close(self) -> None:
        self._closed = True
        for task in list(self._runners):
            task.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        await close_pubsub(self._pubsub)
