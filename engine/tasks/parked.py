"""Finalizes that could not reach Postgres wait in Redis and land once it is back.

A runner that still cannot write its outcome after its own retries parks the outcome and
its `task_done` payload in one Redis hash (durable: any node can pick it up, also after
the runner's node is gone). Every node retries the parked entries with backoff; the
finalize statement is idempotent, so exactly one write lands and only the node whose
write landed publishes the terminal record. The task keeps its lease until then... is not
needed: the entry itself is the durable record of the outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from db import tasks as task_rows
from db.pool import DATABASE_DOWN
from engine.aio import check_cancelled
from engine.redis_keys import RedisKeys
from engine.stream.history import read_partial
from engine.tasks.finalize import publish_done

log = logging.getLogger(__name__)

MAX_DELAY_S = 15.0


def encode(outcome: task_rows.TaskOutcome, payload: dict[str, Any]) -> str:
    data = asdict(outcome)
    data["cost_usd"] = None if outcome.cost_usd is None else str(outcome.cost_usd)
    return json.dumps({"outcome": data, "payload": payload}, separators=(",", ":"))


def decode(raw: str | bytes) -> tuple[task_rows.TaskOutcome, dict[str, Any]]:
    data = json.loads(raw)
    fields = data["outcome"]
    if fields["cost_usd"] is not None:
        fields["cost_usd"] = Decimal(fields["cost_usd"])
    return task_rows.TaskOutcome(**fields), data["payload"]


class PendingFinalizes:
    """The parked finalizes of the deployment and this node's loop that retries them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        keys: RedisKeys,
        history_ttl_s: int,
        interval_s: float = 1.0,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.keys = keys
        self.key = keys.parked_finalizes()
        self.history_ttl_s = history_ttl_s
        self.interval_s = interval_s

    async def defer(
        self, task_id: UUID, outcome: task_rows.TaskOutcome, payload: dict[str, Any]
    ) -> None:
        """Park an outcome (the runner's `defer_finalize`). Retries while Redis blinks."""
        raw = encode(outcome, payload)
        delay = 0.1
        while True:
            try:
                await self.redis.hset(self.key, str(task_id), raw)
                log.warning("finalize of task %s parked until Postgres is back", task_id)
                return
            except (RedisError, OSError) as exc:
                check_cancelled()
                log.warning("could not park the finalize of %s (%s)", task_id, type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)

    async def land_once(self) -> int:
        """Try every parked finalize once; returns how many are still parked."""
        entries = cast(dict[bytes, bytes], await self.redis.hgetall(self.key))
        left = 0
        for task_id, raw in entries.items():
            outcome, payload = decode(raw)
            try:
                landed = await task_rows.finalize_task(self.pool, UUID(task_id.decode()), outcome)
            except DATABASE_DOWN:
                left += 1
                continue
            if landed or not (await read_partial(self.redis, self.keys, task_id.decode())).ended:
                await publish_done(
                    self.redis,
                    self.keys,
                    task_id.decode(),
                    payload,
                    self.history_ttl_s,
                )
                log.warning("parked finalize of task %s landed", task_id.decode())
            await self.redis.hdel(self.key, task_id)
        return left

    async def run(self) -> None:
        delay = self.interval_s
        while True:
            await asyncio.sleep(delay)
            try:
                left = await self.land_once()
            except (RedisError, OSError) as exc:
                check_cancelled()
                log.warning("parked finalizes unavailable (%s)", type(exc).__name__)
                left = 1
            delay = min(delay * 2, MAX_DELAY_S) if left else self.interval_s
