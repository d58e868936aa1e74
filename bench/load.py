"""One load process: real python-socketio clients running tasks, plus idle sockets.

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

import socketio

from bench.idle import IdleSockets
from bench.stats import ProcessResult, TaskTrace
from server.jsonpack import FastClientPacket
from server.loop import run_loop

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


class BenchClient:
    """A socket that routes task events to their traces (chunks may precede the ack)."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(
            reconnection=False, handle_sigint=False, serializer=FastClientPacket
        )
        self.traces: dict[str, TaskTrace] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self.early: dict[str, list[tuple[str, float, dict[str, Any]]]] = {}
        self.sio.on("task_chunk", self._on_chunk)
        self.sio.on("task_done", self._on_done)

    def _route(self, kind: str, data: dict[str, Any]) -> None:
        at = time.monotonic()
        trace = self.traces.get(data["task_id"])
        if trace is None:
            self.early.setdefault(data["task_id"], []).append((kind, at, data))
        elif kind == "c":
            trace.chunk(at, data["seq"], data["text"])
        else:
            trace.finish(at, data)
            trace_done = self._waiters.pop(data["task_id"], None)
            if trace_done is not None:
                trace_done.set()

    async def _on_chunk(self, data: dict[str, Any]) -> None:
        self._route("c", data)

    async def _on_done(self, data: dict[str, Any]) -> None:
        self._route("d", data)

    async def connect(self, url: str, token: str) -> None:
        await self.sio.connect(
            url, auth={"token": token}, transports=["websocket"], wait_timeout=30
        )

    async def run_task(self, request: dict[str, Any], timeout_s: float) -> TaskTrace:
        trace = TaskTrace(sent=time.monotonic())
        try:
            ack = await self.sio.call("execute", request, timeout=timeout_s)
        except socketio.exceptions.TimeoutError:
            trace.error = "ack_timeout"
            return trace
        if not ack.get("ok"):
            trace.error = str((ack.get("error") or {}).get("code", "unknown"))
            return trace
        task_id = trace.task_id = ack["task_id"]
        done = asyncio.Event()
        self._waiters[task_id] = done
        self.traces[task_id] = trace
        for kind, at, data in self.early.pop(task_id, []):
            if kind == "c":
                trace.chunk(at, data["seq"], data["text"])
            else:
                trace.finish(at, data)
                done.set()
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
            await asyncio.sleep(0)  # a stray event right behind task_done still counts
        except TimeoutError:
            trace.error = "done_timeout"
        finally:
            self._waiters.pop(task_id, None)
            self.traces.pop(task_id, None)
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

    async def _slot(self, client: BenchClient) -> None:
        while self._take():
            self.counter += 1
            self.in_flight += 1
            trace = await client.run_task(
                _request(self.plan, self.counter), self.plan.task_timeout_s
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

    async def _connect_all(self, clients: list[BenchClient]) -> None:
        async def one(client: BenchClient) -> None:
            try:
                await client.connect(self.plan.url, self.plan.token)
            except socketio.exceptions.ConnectionError as exc:
                self.result.connect_errors[type(exc).__name__] += 1

        # Bounded: a burst of thousands of handshakes only queues up in the server's backlog.
        sem = asyncio.Semaphore(50)

        async def bounded(client: BenchClient) -> None:
            async with sem:
                await one(client)

        await asyncio.gather(*(bounded(c) for c in clients))

    async def run(self) -> None:
        plan = self.plan
        clients = [BenchClient() for _ in range(plan.clients)]
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
            await asyncio.gather(
                *(c.sio.disconnect() for c in clients if c.sio.connected), return_exceptions=True
            )
        self.shared.results.put(("result", plan.index, self.result))


def main(plan: LoadPlan, shared: Shared) -> None:
    """Entry point of a load process."""
    run_loop(LoadProcess(plan, shared).run())
