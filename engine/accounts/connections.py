"""The per-user cap on open connections, counted over every node in Redis.

Each open socket is a member `{node}:{sid}` of a sorted set per user, scored by when its
lease ends. Admitting is one Lua script (drop expired leases, count, add), so two nodes
cannot both admit the last allowed connection. Each node renews its sockets' leases
periodically, so the sockets of a node that died stop counting once their leases end.

While Redis cannot be asked, each node still holds every user to the cap with its own
connections: the cap over the deployment becomes the cap per node until Redis is back,
never no cap at all.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from engine.redis_keys import RedisKeys

log = logging.getLogger(__name__)
# The set itself lives long: under Redis's `volatile-ttl` eviction a key with a short TTL
# goes first, and a user's cap must outlive finished task histories (docs/tenancy.md).
SET_TTL_S = 24 * 3600

# KEYS: the user's set.  ARGV: now, cap, member, lease end, key ttl.  Returns 1 if admitted.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class ConnectionCounter:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, cap: int, lease_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.cap = cap
        self.lease_s = lease_s
        self._admit = redis.register_script(_ADMIT)
        self._here: dict[UUID, set[str]] = {}  # this node's admitted connections, by user

    def _key(self, user_id: UUID) -> str:
        return self.keys.connections(user_id)

    async def admit(self, user_id: UUID, member: str) -> bool:
        """Count a new connection of the user unless the cap is reached.

        When Redis cannot be asked, this node's own connections of the user are held to the
        cap (and it is logged): refusing every connection while Redis blinks would hurt more
        than a cap counted per node for a while.
        """
        now = time.time()
        here = self._here.setdefault(user_id, set())
        try:
            admitted: Any = await self._admit(
                keys=[self._key(user_id)],
                args=[now, self.cap, member, now + self.lease_s, SET_TTL_S],
            )
        except RedisError as exc:
            log.warning("connection cap counted on this node only (%s)", type(exc).__name__)
            admitted = len(here) < self.cap
        if admitted:
            here.add(member)
        elif not here:
            del self._here[user_id]
        return bool(admitted)

    async def release(self, user_id: UUID, member: str) -> None:
        here = self._here.get(user_id)
        if here is not None:
            here.discard(member)
            if not here:
                del self._here[user_id]
        try:
            await self.redis.zrem(self._key(user_id), member)
        except RedisError as exc:  # the lease ends by itself
            log.warning("connection release failed (%s)", type(exc).__name__)

    async def renew(self, members: list[tuple[UUID, str]]) -> None:
        """Extend the leases of this node's open connections."""
        if not members:
            return
        until = time.time() + self.lease_s
        pipe = self.redis.pipeline(transaction=False)
        for user_id, member in members:
            pipe.zadd(self._key(user_id), {member: until}, xx=True)
            pipe.expire(self._key(user_id), SET_TTL_S)
        try:
            await pipe.execute()
        except RedisError as exc:
            log.warning("connection lease renewal failed (%s)", type(exc).__name__)
