"""This node's part in a deployment of gateways and workers sharing Redis and Postgres.

- gateway: records tasks and hands them to workers through the job queue.
- worker: reads the job queue's partitions, claims each task, runs it with the runner,
  heartbeats its lease, and obeys cancels from any node.
- serve: both; a task it records runs here at once (no hand-off), and it also takes jobs.
Every role sweeps expired leases (engine/cluster/sweeper.py) and lands parked finalizes
(engine/tasks/parked.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import uuid
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

from redis.exceptions import RedisError

from db import tasks as task_rows
from engine.accounts.byok import ProviderKeys
from engine.accounts.quotas import Reservation
from engine.aio import check_cancelled, close_pubsub, spawn_loop, stop
from engine.cluster.jobs import Job, Leases
from engine.cluster.queue import IDLE_SCAN_S, Doorbell, JobQueue
from engine.cluster.sweeper import CANCELLED_BEFORE_START, Sweeper, end_task
from engine.errors import InternalError, InvalidRequest, ServiceUnavailable
from engine.providers.registry import ProviderRegistry
from engine.settings import Settings
from engine.status import ENDED, TaskStatus
from engine.tasks.finalize import Ending, TaskEnd, error_payload, task_event
from engine.tasks.parked import PendingFinalizes
from engine.tasks.plan import RunnerDeps, TaskPlan
from engine.tasks.runner import CancelReason, run_task
from engine.tasks.supervisor import TaskSupervisor
from engine.usage import Usage

log = logging.getLogger(__name__)

NO_PROVIDER = Ending(
    TaskStatus.FAILED,
    "error",
    error_payload(InternalError("no worker can run this provider")),
    "the worker has no such provider",
)


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ClusterNode:
    """The engine's dispatcher for the node's role, and the role's background loops."""

    def __init__(
        self,
        settings: Settings,
        deps: RunnerDeps,
        registry: ProviderRegistry,
        supervisor: TaskSupervisor,
        provider_keys: ProviderKeys,
        finalizes: PendingFinalizes,
    ) -> None:
        self.settings = settings
        self.role = settings.role
        # A task whose answer asks for tools hands its continuation over like any task.
        self.deps = dataclasses.replace(deps, continue_task=self.dispatch)
        self.registry = registry
        self.supervisor = supervisor
        self.provider_keys = provider_keys
        self.finalizes = finalizes
        self.node_id = settings.node_id or default_node_id()
        self.queue = JobQueue(deps.redis, deps.keys, settings.priority_starvation_bound)
        self.doorbell = Doorbell(deps.redis, deps.keys)
        self.leases = Leases(deps.redis, deps.keys, self.node_id, settings.lease_ttl_s)
        self.sweeper = Sweeper(deps, registry, self.leases, self.queue, settings.lease_ttl_s / 2)
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._owned: set[asyncio.Task[Any]] = set()
        self._slots: dict[str, Reservation] = {}  # running-task slots, renewed with leases
        self._stopping = asyncio.Event()

    @property
    def runs_tasks(self) -> bool:
        return self.role in ("serve", "worker")

    async def start(self) -> None:
        """Create the consumer group and start this role's loops."""
        await self.queue.ensure_group()
        self._spawn_loop("sweeper", self.sweeper.run())
        self._spawn_loop("finalizer", self.finalizes.run())
        if self.runs_tasks:
            self._spawn_loop("heartbeat", self._heartbeat())
            self._spawn_loop("cancel-listener", self._listen_cancels())
            self._spawn_loop("job-consumer", self._consume())

    def _spawn_loop(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        self._loops[name] = spawn_loop(coro, f"{name}-{self.node_id}")

    def _own(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._owned.add(task)
        task.add_done_callback(self._owned.discard)

    # Dispatcher ---------------------------------------------------------------------------

    async def dispatch(self, plan: TaskPlan) -> None:
        """Hand the recorded task to a worker (gateway) or run it here (serve, worker)."""
        job = Job.from_plan(plan)
        try:
            if not self.runs_tasks:
                await self.queue.enqueue(job)
                return
            claimed = await self.leases.claim_new(job)
        except (RedisError, OSError):
            check_cancelled()
            await self._fail_undispatched(plan)
            raise ServiceUnavailable("the job queue is unavailable; try again") from None
        if not claimed:
            raise InternalError("task already claimed")  # a fresh id: cannot happen
        self._run(plan)

    async def _fail_undispatched(self, plan: TaskPlan) -> None:
        """Redis is away: end the recorded task at once rather than leave it `running`."""
        error = error_payload(ServiceUnavailable("the job queue is unavailable; try again"))
        end = TaskEnd(
            task_id=str(plan.task_id),
            run_id=plan.run_id,
            status="failed",
            finish_reason="error",
            text="",
            last_seq=0,
            provider=plan.provider_name,
            model=plan.request.model,
            usage=Usage(0, 0),
            cost=None,
            latency_ms=0,
            error=error,
            events=[task_event("error", error["message"], "error")],
        )
        await task_rows.finalize_task(self.deps.pool, plan.task_id, end.outcome())

    async def cancel(self, task_id: str) -> bool:
        """Cancel here if it runs here; else stop it before it starts, or tell its worker."""
        if await self.supervisor.cancel(task_id):
            return True
        await self.leases.request_cancel(task_id)  # heartbeats read it if the message is lost
        if await self.leases.claim(task_id, holder="cancelled"):
            job = await self.queue.describe(task_id)
            await end_task(self.deps, self.registry, task_id, job, CANCELLED_BEFORE_START)
            return True
        await self.deps.redis.publish(self.deps.keys.cancel_channel(), task_id)
        return await self._wait_ended(task_id)

    async def _wait_ended(self, task_id: str) -> bool:
        delay, loop = 0.05, asyncio.get_running_loop()
        deadline = loop.time() + self.settings.cancel_wait_s
        while loop.time() < deadline:
            row = await task_rows.get_task_unscoped(self.deps.pool, UUID(task_id))
            if row is None or row["status"] in ENDED:
                return True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        return False

    # Running tasks ------------------------------------------------------------------------

    def _run(self, plan: TaskPlan) -> None:
        task_id = str(plan.task_id)
        deps = self.deps

        if plan.reservation is not None:
            self._slots[task_id] = plan.reservation

        async def body(reason: dict[str, str]) -> dict[str, Any]:
            try:
                payload = await run_task(deps, plan, reason)  # settles the slot at its end
            except (RedisError, OSError):
                # Its terminal record may be missing: keep the lease, let it expire, and a
                # sweeper writes the record from the database row.
                log.warning("task %s ended without its terminal record on Redis", task_id)
                raise
            except BaseException:
                await asyncio.shield(self._release(task_id))
                raise
            finally:
                self._slots.pop(task_id, None)
            await asyncio.shield(self._release(task_id))
            return payload

        # Before the execute is acknowledged: the socket's watch, created right after, takes
        # the task's records in memory. Ended however the runner ends, even unstarted.
        deps.local.start(task_id)
        runner = self.supervisor.start(task_id, body)
        runner.add_done_callback(lambda _: deps.local.end(task_id))

    async def _ensure_group(self) -> None:
        """Recreate the consumer group if Redis lost it (restarted without persistence)."""
        try:
            await self.queue.ensure_group()
        except (RedisError, OSError):
            check_cancelled()

    async def _release(self, task_id: str) -> None:
        try:
            await self.leases.release(task_id)
        except (RedisError, OSError) as exc:  # the sweeper finds the terminal record
            log.warning("could not release the lease of %s (%s)", task_id, type(exc).__name__)

    async def _accept(self, entry_id: str, task_id: str) -> None:
        """Run a job from the stream unless another node claimed its task first."""
        job = await self.queue.describe(task_id) if task_id else None
        if job is None:
            log.error("job %s has no description; dropped", entry_id)
        elif await self.leases.claim(task_id):
            try:
                keys = self.provider_keys.for_user_id(UUID(job.user_id))
                plan = job.to_plan(self.registry, keys)
            except InvalidRequest:
                await self.leases.release(task_id)
                await end_task(self.deps, self.registry, task_id, job, NO_PROVIDER)
            else:
                self._run(plan)
        await self.queue.ack(entry_id)

    async def _consume(self) -> None:
        try:
            await self._take_jobs()
        finally:
            await self.doorbell.close()

    async def _take_jobs(self) -> None:
        loop = asyncio.get_running_loop()
        idle_ms = int(self.settings.lease_ttl_s * 1000)
        next_reclaim = 0.0
        rung: set[int] | None = None  # partitions rung since a look found nothing; None: all
        while not self._stopping.is_set():
            free = self.settings.worker_concurrency - len(self.supervisor)
            if free <= 0:
                await asyncio.sleep(0.05)
                continue
            try:
                entries: list[tuple[str, str]] = []
                if loop.time() >= next_reclaim:  # jobs read by a worker that died, and
                    await self.queue.drain_legacy(self.node_id, idle_ms)  # the old queue's
                    entries = await self.queue.reclaim(self.node_id, idle_ms, free)
                    next_reclaim = loop.time() + self.settings.lease_ttl_s / 3
                if not entries:
                    entries = await self.queue.take(self.node_id, min(free, 16), rung)
                for entry_id, task_id in entries:
                    await self._accept(entry_id, task_id)
            except (RedisError, OSError) as exc:
                check_cancelled()
                log.warning("job queue unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(0.5)
                await self._ensure_group()
                rung = None
                continue
            # Nothing waited: reads cannot block across the partitions' slots, so wait for
            # a gateway's ring (then look at the partitions rung), or look at all in a while.
            rung = None if entries else await self.doorbell.wait(IDLE_SCAN_S)

    async def _heartbeat(self) -> None:
        """Keep this node's leases alive; obey cancels whose message was missed."""
        period = delay = self.settings.lease_ttl_s / 3
        while True:
            await asyncio.sleep(delay)
            running = self.supervisor.task_ids()
            try:
                lost = await self.leases.renew(running)
                slots = [self._slots[t] for t in running if t in self._slots and t not in lost]
                if self.deps.quotas is not None:
                    await self.deps.quotas.renew(slots, self.settings.lease_ttl_s)
                cancelled = await self.leases.cancel_requested(running)
            except (RedisError, OSError) as exc:
                check_cancelled()
                log.warning("heartbeat failed (%s)", type(exc).__name__)
                delay = min(period, 0.5)  # renew as soon as Redis is back
                continue
            delay = period
            for task_id in lost:  # a sweeper ended it: stop streaming into an ended task
                log.warning("lease of task %s was lost; stopping it", task_id)
                self._own(self.supervisor.cancel(task_id, CancelReason.SHUTDOWN))
            for task_id in cancelled:
                self._own(self.supervisor.cancel(task_id))

    async def _listen_cancels(self) -> None:
        channel = self.deps.keys.cancel_channel()
        pubsub = self.deps.redis.pubsub()
        try:
            while True:
                try:
                    if not pubsub.subscribed:
                        await pubsub.subscribe(channel)
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                except (RedisError, OSError) as exc:
                    check_cancelled()
                    log.warning("cancel channel lost (%s); reconnecting", type(exc).__name__)
                    await asyncio.sleep(0.5)
                    # A fresh one: on a cluster, its node may be gone for good (a failover).
                    await close_pubsub(pubsub)
                    pubsub = self.deps.redis.pubsub()
                    continue
                if message is not None and message["type"] == "message":
                    task_id = message["data"].decode()
                    if self.supervisor.is_running(task_id):
                        self._own(self.supervisor.cancel(task_id))
        finally:
            await close_pubsub(pubsub)

    # Shutdown -----------------------------------------------------------------------------

    async def drain(self, grace_s: float) -> None:
        """Stop taking jobs, then give running tasks up to `grace_s` to end by themselves."""
        self._stopping.set()
        log.warning(
            "draining: no new jobs; %d task(s) running, %.0f s to end",
            len(self.supervisor),
            grace_s,
        )
        consumer = self._loops.pop("job-consumer", None)
        if consumer is not None:
            try:
                await asyncio.wait_for(consumer, 3.0)  # it waits IDLE_SCAN_S at most
            except TimeoutError:
                pass
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while len(self.supervisor) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        if len(self.supervisor):
            log.warning(
                "%d task(s) still running after the grace period; failing them",
                len(self.supervisor),
            )

    async def close(self) -> None:
        """Stop the loops (after the supervisor has ended this node's tasks)."""
        await stop([*self._loops.values(), *self._owned])
        self._loops.clear()
