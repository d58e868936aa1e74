"""One load process: promptrelay's own Python client (`promptrelay_client`) running tasks,
plus idle sockets.

Runs in a child process (`multiprocessing`, spawn). It connects its sockets, reports
ready, waits for the common start, runs task slots until the shared task budget or the
deadline is spent, and sends its `ProcessResult` back. Progress goes up every half second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

from bench.idle import IdleSockets
from bench.stats import ProcessResult, TaskTrace
from promptrelay_client import Client, PromptrelayError
from server.process.loop import run_loop

PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class LoadPlan:
    """This process's share of the load; picklable."""

    index: int
    url: str
    token: str
    clients: int
    concurrency: int
    idle_clients: int
    model: str
    max_tokens: int
    tokens_per_second: float | None
    duration_s: float | None
    task_timeout_s: float


@dataclass
class Shared:
    """Objects shared by the parent and every load process."""

    budget: Synchronized[int]  # tasks left to start; < 0 means unlimited
    ready: Queue[Any]
    start: Event
    results: Queue[Any]


async def _within(future: asyncio.Future[Any], timeout_s: float) -> bool:
    """Whether `future` is done within `timeout_s`; never cancels it (the client owns it)."""
    done, _ = await asyncio.wait({future}, timeout=timeout_s)
    return bool(done)


async def run_task(client: Client, request: dict[str, Any], timeout_s: float) -> TaskTrace:
    """One task on `client`, traced as it reached the client: each chunk when it came and
    in the order the server sent it, with what the client repaired kept on record."""
    trace = TaskTrace(sent=time.monotonic())
    connects = client.connects
    # No request_id: the server's idempotency reads would be measured as the task's cost.
    task = client.execute(request, request_id=None)
    # The client gives up on an ack after `timeout_s` (code `timeout`); the bound here is
    # for a client without a connection to send the execute on.
    if not await _within(task.started, timeout_s):
        trace.error = "ack_timeout"
        return trace
    if task.error is not None:
        trace.error = "ack_timeout" if task.error.code == "timeout" else task.error.code
        return trace
    trace.task_id = task.task_id
    if await _within(task.done, timeout_s):
        await asyncio.sleep(0)  # a stray event right behind task_done still counts
        trace.error = task.error.code if task.error is not None else None
    else:
        trace.error = "done_timeout"
    if client.connects != connects:
        trace.error = trace.error or "reconnected"  # resumed by the client: not one stream
    for chunk in task.chunks:
        trace.chunk(chunk.at, chunk.seq, chunk.text)
    if task.result is not None and task.done_at is not None:
        trace.finish(task.done_at, task.result)
    trace.anomalies = [a.kind for a in task.anomalies]
    return trace


def _request(plan: LoadPlan, n: int) -> dict[str, Any]:
    settings: dict[str, Any] = {"max_tokens": plan.max_tokens}
    if plan.tokens_per_second is not None and plan.model.startswith("simulated/"):
        settings["tokens_per_second"] = plan.tokens_per_second
    return {
        "model": plan.model,
        "settings": settings,
        "messages": [{"role": "user", "content": f"bench {plan.index} task {n}"}],
    }


class LoadProcess:
    def __init__(self, plan: LoadPlan, shared: Shared) -> None:
        self.plan = plan
        self.shared = shared
        self.result = ProcessResult()
        self.in_flight = 0
        self.counter = 0
        self.deadline = float("inf")

    def _take(self) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        budget = self.shared.budget
        with budget.get_lock():
            if budget.value == 0:
                return False
            if budget.value > 0:
                budget.value -= 1
        return True

    async def _slot(self, client: Client) -> None:
        while self._take():
            self.counter += 1
            self.in_flight += 1
            trace = await run_task(
                client, _request(self.plan, self.counter), self.plan.task_timeout_s
            )
            self.in_flight -= 1
            self.result.add(trace)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            self._report_progress()

    def _report_progress(self) -> None:
        r = self.result
        self.shared.results.put(
            ("progress", self.plan.index, r.tasks, r.tokens, sum(r.errors.values()))
        )

    async def _connect_all(self, clients: list[Client]) -> None:
        async def one(client: Client) -> None:
            try:
                await client.connect()
            except PromptrelayError as exc:
                self.result.connect_errors[exc.code] += 1

        # Bounded: a burst of thousands of handshakes only queues up in the server's backlog.
        sem = asyncio.Semaphore(50)

        async def bounded(client: Client) -> None:
            async with sem:
                await one(client)

        await asyncio.gather(*(bounded(c) for c in clients))

    async def run(self) -> None:
        plan = self.plan
        # One attempt per execute, each given the whole task timeout, as a user's wait.
        clients = [
            Client(plan.url, plan.token, ack_timeout=plan.task_timeout_s, attempts=1)
            for _ in range(plan.clients)
        ]
        idle = IdleSockets(plan.url, plan.token)
        try:
            await self._connect_all(clients)
            idle_failed = await idle.open(plan.idle_clients)
            self.result.connect_errors.update(idle_failed)
            self.shared.ready.put(plan.index)
            await asyncio.get_running_loop().run_in_executor(None, self.shared.start.wait)
            if plan.duration_s is not None:
                self.deadline = time.monotonic() + plan.duration_s
            live = [c for c in clients if c.sio.connected] or clients[:1]
            cpu = time.process_time()
            progress = asyncio.create_task(self._progress())
            try:
                if live[0].sio.connected:
                    await asyncio.gather(
                        *(self._slot(live[i % len(live)]) for i in range(plan.concurrency))
                    )
            finally:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
            self.result.cpu_s = time.process_time() - cpu
            self._report_progress()
            dropped = plan.idle_clients - idle.held - sum(idle_failed.values())
            if dropped > 0:
                self.result.connect_errors["idle_dropped"] += dropped
        finally:
            await idle.close()
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        self.shared.results.put(("result", plan.index, self.result))


def main(plan: LoadPlan, shared: Shared) -> None:
    """Entry point of a load process."""
    run_loop(LoadProcess(plan, shared).run())
