"""The Redis commands of concurrent tasks in one pipeline per tick.

A task's short commands (its quota script at execute and at its end, its job and start
claim, its lease release, the runs-feed announcement) each cost a round trip, and in
redis-py a round trip costs far more CPU than the command: a connection from the pool, a
write, a read, a parse. `RedisBatch` hands the commands that concurrent callers issue in the
same turn of the event loop to one non-transactional pipeline (db/groupcommit.py does the
grouping), and each caller gets its own command's reply or error; a caller's several
commands (`calls`) stay together, in their order, in one pipeline. A script stays one atomic
command, so what each one checks (the quota, the running cap, a claim) is as exact as before.

Only for a plain Redis: on a Redis Cluster the commands go one by one as before (a pipeline
there is split by slot, which takes most of the gain away and adds its own failure modes).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from db.groupcommit import GroupCommit

Command = tuple[Any, ...]

# Failures of the connection, not of a command: every caller of the pipeline gets them.
_SHARED = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


class RedisBatch:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        # An item is the commands of one caller, kept together and in order.
        self._group: GroupCommit[tuple[Command, ...], list[Any]] = GroupCommit(
            self._pipeline,
            self._single,
            key=lambda _: object(),  # every caller's item is its own
            shared_errors=_SHARED,
            max_batch=128,
            max_in_flight=2,
        )

    async def call(self, *command: Any) -> Any:
        """One command, sent with whatever else the other tasks send in this tick."""
        reply = (await self._group.submit((command,)))[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def calls(self, *commands: Command) -> list[Any]:
        """Several commands, one after the other in the same pipeline; each one's reply, or
        its error in its place."""
        return await self._group.submit(commands)

    async def script(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVALSHA in the tick's pipeline; a Redis that lost the script (restarted, flushed)
        gets it loaded by the script's own call."""
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await script(keys=list(keys), args=list(args))

    async def eval(self, script: str, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """A script known by its text and SHA1, as `script` does for a registered one."""
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.redis.eval(script, len(keys), *keys, *args)

    async def _pipeline(self, items: list[tuple[Command, ...]]) -> list[list[Any]]:
        pipe = self.redis.pipeline(transaction=False)
        for commands in items:
            for command in commands:
                pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        out: list[list[Any]] = []
        at = 0
        for commands in items:
            out.append(replies[at : at + len(commands)])
            at += len(commands)
        return out

    async def _single(self, commands: tuple[Command, ...]) -> list[Any]:
        if len(commands) > 1:
            return (await self._pipeline([commands]))[0]
        try:
            return [await self.redis.execute_command(*commands[0])]  # type: ignore[no-untyped-call]
        except ResponseError as exc:  # that command's own error, as in a pipeline
            return [exc]


_BATCHES: weakref.WeakKeyDictionary[Any, RedisBatch] = weakref.WeakKeyDictionary()


async def send(redis: Any, *command: Any) -> Any:
    """One command: in the tick's pipeline on a plain Redis, on its own on a cluster."""
    batch = redis_batch(redis)
    if batch is None:
        return await redis.execute_command(*command)
    return await batch.call(*command)


def redis_batch(redis: Any) -> RedisBatch | None:
    """The client's batch (made on first use); None on a Redis Cluster."""
    if isinstance(redis, RedisCluster) or not isinstance(redis, aioredis.Redis):
        return None
    found = _BATCHES.get(redis)
    if found is None:
        found = _BATCHES[redis] = RedisBatch(redis)
    return found
