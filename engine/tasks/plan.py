"""What a runner is given: the task's plan (decided before its row was written) and the
node's shared dependencies, with the retry policy and the key source they name."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from db import tasks as task_rows
from engine.accounts.quotas import Quotas, Reservation
from engine.metrics import Metrics
from engine.prompts.checker import ValidationPool
from engine.providers.base import Provider, ProviderRequest
from engine.redis_keys import RedisKeys
from engine.settings import Settings
from engine.stream.local import LocalFeed
from engine.stream.publisher import ChunkPublisher


@dataclass(frozen=True)
class Candidate:
    """One model to try: the adapter and the model name without its prefix."""

    provider: Provider
    model: str


class KeySource(Protocol):
    """Where a task's per-call provider keys come from (a bring-your-own-key user's store)."""

    async def key_for(self, provider: Provider) -> str | None:
        """The key for `provider`, or None to use the server's own."""


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 2
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.provider_retries, settings.provider_backoff_s, settings.provider_backoff_max_s
        )

    def wait_s(
        self, retry: int, retry_after_s: float | None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds before retry number `retry` (0-based); None when not worth waiting for.

        Full jitter over `backoff_s * 2**retry` capped at `backoff_max_s`, but never sooner
        than the provider's `retry-after`; a `retry-after` beyond the cap moves on instead.
        """
        if retry >= self.retries:
            return None
        if retry_after_s is not None and retry_after_s > self.backoff_max_s:
            return None
        ceiling = min(self.backoff_max_s, self.backoff_s * (2**retry))
        jittered = (rng or random).uniform(0, ceiling)
        return max(jittered, retry_after_s or 0.0)


# Parks an outcome that could not be written (task id, outcome, task_done payload).
FinalizeDeferrer = Callable[[UUID, task_rows.TaskOutcome, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class TaskPlan:
    """Everything a runner needs, decided before the task row was written."""

    task_id: UUID
    run_id: UUID | None
    user_id: UUID
    provider: Provider
    provider_name: str
    request: ProviderRequest
    new_messages: list[dict[str, Any]]  # appended to the run with the assistant's answer
    reservation: Reservation | None = None  # the quota unit taken at execute
    validations: list[dict[str, Any]] = field(default_factory=list)  # run on the final text
    fallbacks: tuple[Candidate, ...] = ()  # tried in order when the model is unavailable
    keys: KeySource | None = None  # a bring-your-own-key user's keys; None: the server's
    priority: str = "normal"  # where it waits (the job streams), it starts in this order
    # A continuation (docs/tools.md): the task whose calls' results it waits for first
    parent_task_id: UUID | None = None
    step: int = 1  # model calls of this tool conversation, this one included


@dataclass(frozen=True)
class RunnerDeps:
    """What every runner of the node shares."""

    pool: asyncpg.Pool
    redis: aioredis.Redis
    keys: RedisKeys
    publisher: ChunkPublisher
    quotas: Quotas
    first_token_timeout_s: float
    idle_timeout_s: float
    history_ttl_s: int
    metrics: Metrics = field(default_factory=Metrics)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    defer_finalize: FinalizeDeferrer | None = None  # parks a finalize Postgres refused
    validator: ValidationPool = field(default_factory=ValidationPool)  # worker processes
    max_output_chars: int = 1_000_000  # a longer output ends with finish_reason "length"
    # Tool calling: hands a continuation over to run (the node's dispatch), the wait for
    # results, the default of max_steps
    continue_task: Callable[[TaskPlan], Awaitable[None]] | None = None
    tool_result_timeout_s: float = 300.0
    max_tool_steps: int = 8

    @property
    def local(self) -> LocalFeed:
        """The tasks running in this process and their way to its relay (the publisher's)."""
        return self.publisher.local

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        publisher: ChunkPublisher,
        metrics: Metrics,
        defer_finalize: FinalizeDeferrer | None,
    ) -> RunnerDeps:
        keys = RedisKeys(settings.redis_prefix, settings.job_partitions)
        return cls(
            pool=pool,
            redis=redis,
            keys=keys,
            publisher=publisher,
            quotas=Quotas(redis, keys, settings),
            first_token_timeout_s=settings.first_token_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
            history_ttl_s=settings.history_ttl_s,
            metrics=metrics,
            retry=RetryPolicy.from_settings(settings),
            defer_finalize=defer_finalize,
            validator=ValidationPool(
                settings.validation_workers,
                settings.validation_timeout_s,
                settings.validation_per_user,
            ),
            max_output_chars=settings.max_output_chars,
            tool_result_timeout_s=settings.tool_result_timeout_s,
            max_tool_steps=settings.max_tool_steps,
        )
