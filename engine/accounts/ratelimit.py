"""HTTP request rate per user and per client address, counted over every node in Redis.

A fixed window of a minute: one counter key per subject and minute
(`{prefix}rl:{subject}:{minute}`), incremented by one Lua call that also sets its TTL, so
every node counts into the same key like the quota counters. Past the limit the request
is `rate_limited` with `details.retry_after_ms` until the window ends. When Redis cannot
be asked the request passes (and a warning is logged), as with the connection cap.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from engine.errors import RateLimited
from engine.redis_keys import RedisKeys

log = logging.getLogger(__name__)
WINDOW_S = 60

# KEYS: the window's counter.  ARGV: ttl.  Returns the count including this request.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self.keys = keys
        self._hit = redis.register_script(_HIT)

    async def hit(self, subject: str, limit: int) -> None:
        """Count one request of `subject` (`u:{user}` or `a:{address}`); RateLimited past
        `limit` per minute (0: unlimited)."""
        if limit <= 0:
            return
        now = time.time()
        window = int(now // WINDOW_S)
        key = self.keys.http_rate(subject, window)
        try:
            count: Any = await self._hit(keys=[key], args=[WINDOW_S + 5])
        except (RedisError, OSError) as exc:
            log.warning("HTTP rate not checked (%s)", type(exc).__name__)
            return
        if int(count) > limit:
            retry_after_ms = int(((window + 1) * WINDOW_S - now) * 1000) + 1
            raise RateLimited(
                f"at most {limit} requests per minute",
                details={"retry_after_ms": retry_after_ms, "limit": limit},
            )
