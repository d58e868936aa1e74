"""Task quotas by tier and the per-user cap on running tasks, atomic across processes.

One Lua script reserves a unit at `execute`: it checks the running-task cap and the daily
and monthly counters, and only when all pass increments both counters and records the task
as running. Redis runs a script alone, so 50 concurrent executes at `limit - 1` on any
number of nodes admit exactly one. Counters are keyed by their day / month and expire by
themselves after it; the running set holds a lease per task that also expires, so a node
that dies mid-task does not keep its user capped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from engine.errors import QuotaExceeded, RateLimited, ServiceUnavailable
from engine.redis_batch import redis_batch
from engine.redis_keys import RedisKeys
from engine.settings import Settings

log = logging.getLogger(__name__)

UNLIMITED = -1
RETRY_AFTER_MS = 1000
# Quota scripts in flight per process on a Redis Cluster: a burst of executes queues here
# instead of taking every connection of the Redis pool (redis-py raises past its
# max_connections). On a plain Redis they go in the tick's pipeline (engine/redis_batch.py).
MAX_IN_FLIGHT = 16

# KEYS: daily, monthly, running, [the request_id's idempotency key].  ARGV: daily limit,
# monthly limit, daily ttl, monthly ttl, running cap, now (s), task id, lease end (s),
# [the ids the idempotency key gets, its ttl].
# Returns {0} admitted, {1, used} daily used up, {2, used} monthly used up, {3} capped,
# {4, 0, ids} the request_id is held by an earlier request (nothing reserved). The key is
# claimed only with the reservation, so a refused request leaves it free.
_RESERVE = """
if KEYS[4] then
  local held = redis.call('GET', KEYS[4])
  if held then return {4, 0, held} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return {3, 0} end
local day = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) >= 0 and day >= tonumber(ARGV[1]) then return {1, day} end
local month = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[2]) >= 0 and month >= tonumber(ARGV[2]) then return {2, month} end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[7])
redis.call('EXPIRE', KEYS[3], 86400)
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[9], 'EX', ARGV[10]) end
return {0, 0}
"""

# KEYS: daily, monthly, running.  ARGV: task id, give the unit back (1/0).
_SETTLE = """
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[2] == '1' then
  for i = 1, 2 do
    local n = tonumber(redis.call('GET', KEYS[i]) or '0')
    if n > 0 then redis.call('DECR', KEYS[i]) end
  end
end
return 0
"""


@dataclass(frozen=True)
class TierLimits:
    daily: int
    monthly: int

    def to_dict(self) -> dict[str, int | None]:
        return {
            "daily": None if self.daily == UNLIMITED else self.daily,
            "monthly": None if self.monthly == UNLIMITED else self.monthly,
        }


@dataclass(frozen=True)
class Period:
    """The quota day and month that `now` falls in, and when each ends (UTC)."""

    day: date
    month: str
    day_ends: datetime
    month_ends: datetime

    @classmethod
    def at(cls, now: datetime, utc_offset_min: int) -> Period:
        offset = timedelta(minutes=utc_offset_min)
        local = now + offset
        day = local.date()
        day_start = datetime(day.year, day.month, day.day, tzinfo=UTC) - offset
        next_month = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        month_ends = datetime(next_month.year, next_month.month, 1, tzinfo=UTC) - offset
        return cls(
            day, f"{day.year:04d}-{day.month:02d}", day_start + timedelta(days=1), month_ends
        )


@dataclass(frozen=True)
class Reservation:
    """One reserved unit: the counters it was taken from and the task's lease."""

    task_id: str
    daily_key: str
    monthly_key: str
    running_key: str


@dataclass(frozen=True)
class Claim:
    """An execute's `request_id` to claim with its reservation: the key, what it holds (the
    task's ids), for how long."""

    key: str
    value: str
    ttl_s: int


@dataclass(frozen=True)
class Held:
    """What the `request_id`'s key held: the ids of the earlier request's task."""

    value: str


def limits_for(settings: Settings, tier: str) -> TierLimits:
    """The configured limits of a tier (`free`, `premium`, `byok`); unknown tiers are free."""
    if tier == "premium":
        return TierLimits(settings.quota_premium_daily, settings.quota_premium_monthly)
    if tier == "byok":
        return TierLimits(settings.quota_byok_daily, settings.quota_byok_monthly)
    return TierLimits(settings.quota_free_daily, settings.quota_free_monthly)


class Quotas:
    """Reserve at execute, settle at finalize; shared by every node through Redis."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._batch = redis_batch(redis)
        self._current: Period | None = None

    def _period(self, now: datetime) -> Period:
        """`Period.at(now)`, worked out once per quota day (every execute asks)."""
        cached = self._current
        if cached is None or not (cached.day_ends - _DAY <= now < cached.day_ends):
            cached = self._current = Period.at(now, self.settings.quota_utc_offset_min)
        return cached

    def _keys(self, user_id: UUID, period: Period) -> tuple[str, str, str]:
        k = self.keys
        return (
            k.quota_day(user_id, period.day),
            k.quota_month(user_id, period.month),
            k.running_slots(user_id),
        )

    async def reserve(self, user_id: UUID, tier: str, task_id: str) -> Reservation:
        """Take one unit of the user's quota and a running slot, or raise.

        QuotaExceeded (with limit, used, resets_at) or RateLimited (retry_after_ms).
        """
        found = await self.reserve_claiming(user_id, tier, task_id, None)
        assert isinstance(found, Reservation)  # nothing to find held without a claim
        return found

    async def reserve_claiming(
        self, user_id: UUID, tier: str, task_id: str, claim: Claim | None
    ) -> Reservation | Held:
        """`reserve`, and in the same script (one round trip, atomic) the claim of an
        execute's `request_id`: when an earlier request holds it, nothing is reserved and
        what it holds is returned; else the key is set with the reservation."""
        now = datetime.now(UTC)
        period = self._period(now)
        limits = limits_for(self.settings, tier)
        daily, monthly, running = self._keys(user_id, period)
        lease_s = self._first_lease_s()
        ts = now.timestamp()
        keys = [daily, monthly, running]
        args: list[Any] = [
            limits.daily,
            limits.monthly,
            _ttl(period.day_ends, now),
            _ttl(period.month_ends, now),
            self.settings.max_concurrent_tasks,
            ts,
            task_id,
            ts + lease_s,
        ]
        if claim is not None:
            keys.append(claim.key)
            args += [claim.value, claim.ttl_s]
        try:
            result: Any = await self._run(self._reserve, keys, args)
        except (RedisError, OSError) as exc:
            # Nothing is recorded yet: the caller gets a clean, retryable 503.
            raise ServiceUnavailable("the quota store (Redis) is unreachable; try again") from exc
        verdict, used = int(result[0]), int(result[1])
        if verdict == 4:
            held = result[2]
            return Held(held.decode() if isinstance(held, bytes) else str(held))
        if verdict == 3:
            raise RateLimited(
                f"at most {self.settings.max_concurrent_tasks} tasks may run at once",
                details={
                    "retry_after_ms": RETRY_AFTER_MS,
                    "limit": self.settings.max_concurrent_tasks,
                },
            )
        if verdict in (1, 2):
            daily_hit = verdict == 1
            raise QuotaExceeded(
                f"the {tier} tier's {'daily' if daily_hit else 'monthly'} quota is used up",
                details={
                    "period": "day" if daily_hit else "month",
                    "limit": limits.daily if daily_hit else limits.monthly,
                    "used": used,
                    "resets_at": (period.day_ends if daily_hit else period.month_ends).isoformat(),
                },
            )
        return Reservation(task_id, daily, monthly, running)

    async def settle(self, reservation: Reservation | None, *, give_back: bool) -> None:
        """The task ended: free its running slot; `give_back` returns its unit too.

        A Redis failure here is logged, not raised: the finalize has already been written,
        and the slot's lease and the counters expire by themselves.
        """
        if reservation is None:
            return
        try:
            await self._run(
                self._settle,
                [reservation.daily_key, reservation.monthly_key, reservation.running_key],
                [reservation.task_id, "1" if give_back else "0"],
            )
        except RedisError as exc:
            log.warning(
                "settling the quota of task %s failed (%s)", reservation.task_id, type(exc).__name__
            )

    async def _run(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        """A quota script: in the tick's pipeline of a plain Redis (engine/redis_batch.py),
        else on its own, a bounded number at once."""
        if self._batch is not None:
            return await self._batch.script(script, keys, args)
        async with self._in_flight:
            return await script(keys=keys, args=args)

    async def renew(self, reservations: list[Reservation], lease_s: float) -> None:
        """Move the running slots of tasks this node runs on to `now + lease_s`.

        Called by the same heartbeat that renews the tasks' leases, so a slot lives exactly
        as long as its task: a long stream keeps it, a dead node's tasks lose it with their
        lease (and the sweeper that ends them releases it at once).
        """
        if not reservations:
            return
        until = time.time() + lease_s
        pipe = self.redis.pipeline(transaction=False)
        for r in reservations:
            pipe.zadd(r.running_key, {r.task_id: until}, xx=True)
            # A day, as at reserve: under `volatile-ttl` eviction, short TTLs go first.
            pipe.expire(r.running_key, 86400)
        await pipe.execute()

    def _first_lease_s(self) -> float:
        """A reserved slot's lease until a runner's heartbeat takes it over."""
        return self.settings.first_token_timeout_s + self.settings.provider_timeout_s

    async def usage(self, user_id: UUID) -> dict[str, Any]:
        """Units used in the current day and month, and when each resets."""
        period = Period.at(datetime.now(UTC), self.settings.quota_utc_offset_min)
        daily, monthly, _ = self._keys(user_id, period)
        day_used, month_used = await self.redis.mget([daily, monthly])
        return {
            "day": period.day.isoformat(),
            "tasks_today": int(day_used or 0),
            "tasks_this_month": int(month_used or 0),
            "day_resets_at": period.day_ends.isoformat(),
            "month_resets_at": period.month_ends.isoformat(),
        }


_DAY = timedelta(days=1)


def _ttl(end: datetime, now: datetime) -> int:
    """Seconds until `end`, plus a minute so that a counter outlives its period."""
    return max(1, int((end - now).total_seconds()) + 60)
