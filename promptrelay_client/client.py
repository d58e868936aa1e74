"""The promptrelay client for asyncio: one Socket.IO connection (python-socketio), any
number of tasks, and the hard parts of the protocol done once: chunks that arrive before
the execute ack, repeats and gaps, resubscribing after a reconnect or a draining node,
idempotent retries of execute."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import socketio

from promptrelay_client.credentials import Credentials, TokenProvider
from promptrelay_client.errors import ClientClosed, PromptrelayError
from promptrelay_client.packets import ClientPacket
from promptrelay_client.task import Task

# An execute payload this big may be dropped with its connection by the server's transport
# (it closes a connection past twice MAX_PAYLOAD_BYTES, which is at least 1024, plus 64 KiB)
# instead of being answered payload_too_large.
TRANSPORT_LIMIT_FLOOR = 2 * 1024 + 64 * 1024
RETRY_AFTER_MAX_MS = 30_000  # the longest wait a rate_limited retry_after_ms is honoured for


class Client:
    """`async with Client(url, token) as c:` then `async for chunk in c.execute(...)`.

    `token` is a string or a token provider (a function, sync or async, returning one): the
    provider is asked at every connect, so a connection the server ends because its JWT
    expired (`session_ended`) comes back with a fresh token and every running task resumes
    after its last seq. Without a fresh token everything pending ends with `unauthorized`,
    reported once to `on_auth_error`."""

    def __init__(
        self,
        url: str,
        token: str | TokenProvider,
        *,
        ack_timeout: float = 20.0,
        attempts: int = 5,
        transports: list[str] | None = None,
        reconnection_delay_max: float = 2.0,
        on_runs_changed: Callable[[dict[str, Any]], Any] | None = None,
        on_auth_error: Callable[[PromptrelayError], Any] | None = None,
        rate_limit_retries: int = 4,
    ) -> None:
        self.url = url
        self.credentials = Credentials(token, self._auth_failed)
        # The server sends runs_changed only to connections that ask for it.
        self.auth_extra: dict[str, Any] = {}
        if on_runs_changed is not None:
            self.auth_extra["runs_changed"] = True
        self.on_auth_error = on_auth_error
        self.auth_error: PromptrelayError | None = None  # set once the token is refused
        self._session_ended: PromptrelayError | None = None
        self._refused: PromptrelayError | None = None  # the last connect_error's
        self.ack_timeout = ack_timeout
        self.attempts = attempts
        self.rate_limit_retries = rate_limit_retries
        self.transports = transports or ["websocket"]
        self.sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=0.2,
            reconnection_delay_max=reconnection_delay_max,
            serializer=ClientPacket,
        )
        self.live: dict[str, Task] = {}  # followed until task_done, by task_id
        # Ended tasks still held by the caller: an event after task_done goes on record.
        self.ended: weakref.WeakValueDictionary[str, Task] = weakref.WeakValueDictionary()
        self.early: dict[str, list[tuple[str, dict[str, Any], float]]] = {}
        self.pending_executes = 0
        self.connects = 0
        self.closed = False
        self.stats = {
            "early": 0,
            "gaps": 0,
            "resubscribes": 0,
            "execute_retries": 0,
            "rate_limited": 0,
        }
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()  # set while disconnected
        self._waiting: set[asyncio.Future[None]] = set()  # calls waiting for acks
        self._background: set[asyncio.Task[Any]] = set()
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("task_chunk", lambda p: self._route("task_chunk", p))
        self.sio.on("task_tool_call", lambda p: self._route("task_tool_call", p))
        self.sio.on("task_reasoning", lambda p: self._route("task_reasoning", p))
        self.sio.on("task_done", lambda p: self._route("task_done", p))
        self.sio.on("server_draining", self._on_draining)
        self.sio.on("session_ended", self._on_session_ended)
        self.sio.on("connect_error", self._on_connect_error)
        if on_runs_changed is not None:
            self.sio.on("runs_changed", on_runs_changed)

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect once; a refused token raises PromptrelayError("unauthorized")."""
        try:
            await self.sio.connect(
                self.url, auth=self._auth, transports=self.transports, wait_timeout=20
            )
        except socketio.exceptions.ConnectionError as exc:
            if self.sio.eio.http is not None:
                await self.sio.eio.http.close()
            if self.auth_error is not None:
                raise self.auth_error from None
            if self._refused is not None:
                raise self._refused from None
            raise PromptrelayError("unavailable", f"cannot connect: {exc}") from None

    async def _auth(self) -> dict[str, Any]:
        """The connect packet's auth: the token (from the provider), asked at every connect."""
        return {"token": await self.credentials.next_token(), **self.auth_extra}

    async def close(self) -> None:
        """Disconnect; tasks still followed end with ClientClosed (they go on on the server)."""
        self.closed = True
        for task in list(self.live.values()):
            task._fail(ClientClosed())
        self.live.clear()
        self._lost.set()
        self._wake_waiting()
        for job in list(self._background):
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.sio.disconnect()
        if self.sio.eio.http is not None:
            await self.sio.eio.http.close()

    # -- connection events -----------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        job = asyncio.ensure_future(coro)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    def _on_connect(self) -> None:
        self.connects += 1
        self._lost.clear()
        self._connected.set()
        if self.connects > 1:  # after a reconnect, pick every live task up where it was
            for task in list(self.live.values()):
                self._spawn(self._resubscribe(task))

    def _on_disconnect(self, reason: Any = None) -> None:
        self._connected.clear()
        self._lost.set()
        self._wake_waiting()
        ended, self._session_ended = self._session_ended, None
        if ended is None or self.closed:
            return
        # Ended for authentication: the server will not take this token again.
        self.credentials.refuse()
        if self.credentials.renewable:
            self._spawn(self._reconnect())
        else:
            self._auth_failed(ended)

    def _on_session_ended(self, data: Any = None) -> None:
        self._session_ended = PromptrelayError.from_body(data)

    def _on_connect_error(self, data: Any = None) -> None:
        body = data.get("data") if isinstance(data, dict) else None
        error = PromptrelayError.from_body(body) if isinstance(body, dict) else None
        self._refused = error
        if error is not None and error.code == "unauthorized":
            self.credentials.refuse()
            self._auth_failed(error)

    def _auth_failed(self, error: PromptrelayError) -> None:
        """No valid token: every pending task and call ends with `error`, reported once."""
        if self.auth_error is not None:
            return
        self.auth_error = error
        for task in list(self.live.values()):
            task._fail(error)
        self.live.clear()
        self._lost.set()
        self._wake_waiting()
        if not self.sio.connected:  # stop python-socketio's reconnection attempts
            self._spawn(self.sio.shutdown())
        if self.on_auth_error is not None:
            self.on_auth_error(error)

    def _wake_waiting(self) -> None:
        """Calls waiting for an ack stop waiting: it will not come on this connection."""
        for waiting in self._waiting:
            if not waiting.done():
                waiting.set_result(None)
        self._waiting.clear()

    async def _on_draining(self, data: Any = None) -> None:
        # The node shuts down: reconnect now (the load balancer picks another node); the
        # new connection resubscribes every live task after its last seq.
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        await self.sio.disconnect()
        delay = 0.1
        while not self.closed and not self.sio.connected and self.auth_error is None:
            try:
                await self.sio.connect(self.url, auth=self._auth, transports=self.transports)
            except socketio.exceptions.ConnectionError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- events of tasks -------------------------------------------------------------------

    def _route(self, name: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        at = time.monotonic()
        task_id = str(payload.get("task_id"))
        task = self.live.get(task_id) or self.ended.get(task_id)
        if task is not None:
            self._deliver(task, name, payload, at)
        elif self.pending_executes:  # events may come before the execute ack names the task
            self.stats["early"] += 1
            self.early.setdefault(task_id, []).append((name, payload, at))

    def _deliver(self, task: Task, name: str, payload: dict[str, Any], at: float) -> None:
        if name != "task_done":  # task_chunk, task_tool_call, task_reasoning: one sequence
            task._chunk(payload, at, reasoning=name == "task_reasoning")
            return
        task_id = str(task.task_id)
        if self.live.pop(task_id, None) is not None:
            self.ended[task_id] = task
        task._done(payload, at)

    def _on_gap(self, task: Task) -> None:
        if not task.resyncing:
            self.stats["gaps"] += 1
            task.resyncing = True
            self._spawn(self._resubscribe(task))

    # -- calls -----------------------------------------------------------------------------

    async def _until_connected(self) -> None:
        while not self.sio.connected:
            if self.closed:
                raise ClientClosed()
            if self.auth_error is not None:
                raise self.auth_error
            self._connected.clear()  # python-socketio may be between connect and its event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), 0.5)

    async def _call(self, event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The ack, None when the connection dropped or no ack came (retry), or the error.
        `rate_limited` with `retry_after_ms` is sent again after that wait, at most
        `rate_limit_retries` times (an execute is safe to repeat: its request_id)."""
        for retry in range(self.rate_limit_retries + 1):
            try:
                return await self._call_once(event, payload)
            except PromptrelayError as exc:
                wait = (exc.details or {}).get("retry_after_ms")
                if exc.code != "rate_limited" or not isinstance(wait, int):
                    raise
                if retry == self.rate_limit_retries:
                    raise
                self.stats["rate_limited"] += 1
                await asyncio.sleep(min(wait, RETRY_AFTER_MAX_MS) / 1000)
        raise AssertionError("unreachable")

    async def _call_once(self, event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        await self._until_connected()
        # The ack comes to a future of ours (no task per call), raced against the
        # connection dropping and the ack timeout.
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()

        def answered(*args: Any) -> None:
            if not answer.done():
                answer.set_result(args[0] if len(args) == 1 else None)

        lost: asyncio.Future[None] = loop.create_future()
        if self._lost.is_set():
            lost.set_result(None)
        self._waiting.add(lost)
        try:
            await self.sio.emit(event, payload, callback=answered)
            await asyncio.wait(
                {answer, lost}, timeout=self.ack_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except socketio.exceptions.SocketIOError:
            return None
        finally:
            self._waiting.discard(lost)
        if not answer.done():
            if self.closed:
                raise ClientClosed()
            return None
        ack = answer.result()
        if not isinstance(ack, dict) or ack.get("ok") is not True:
            raise PromptrelayError.from_body(ack.get("error") if isinstance(ack, dict) else None)
        return ack

    def execute(self, request: dict[str, Any] | None = None, /, **fields: Any) -> Task:
        """Start a task (`messages=...`, `model=...`, or a request dict); returns at once.
        A request_id is added when missing, so a retry after a lost ack never runs twice;
        `request_id=None` sends none, and then a lost ack is not retried."""
        payload = {**(request or {}), **fields}
        if "request_id" not in payload:
            payload["request_id"] = str(uuid.uuid4())
        elif payload["request_id"] is None:
            del payload["request_id"]
        task = Task(self._on_gap, payload.get("request_id"))
        task._cancel = self._cancel_task
        self.pending_executes += 1
        self._spawn(self._execute(task, payload))
        return task

    async def _execute(self, task: Task, payload: dict[str, Any]) -> None:
        # Without a request_id a second execute could start a second task.
        attempts = self.attempts if "request_id" in payload else 1
        large = len(json.dumps(payload, default=str)) >= TRANSPORT_LIMIT_FLOOR
        dropped = 0
        try:
            for attempt in range(1, attempts + 1):
                connects = self.connects
                ack = await self._call("execute", payload)
                if ack is not None:
                    self._adopt(task, ack)
                    return
                dropped += large and (self._lost.is_set() or self.connects != connects)
                if dropped >= 2:  # the connection fell with this payload, twice: its size
                    raise PromptrelayError(
                        "payload_too_large", "the server closed the connection on this payload"
                    )
                if attempt < attempts:
                    self.stats["execute_retries"] += 1
            raise PromptrelayError("timeout", "no answer to execute from the server")
        except PromptrelayError as exc:
            task._fail(exc)
        finally:
            self.pending_executes -= 1
            if not self.pending_executes:
                self.early.clear()

    def _adopt(self, task: Task, ack: dict[str, Any]) -> None:
        task._start(ack)
        self.live[str(task.task_id)] = task
        for name, payload, at in self.early.pop(str(task.task_id), []):
            self._deliver(task, name, payload, at)

    def subscribe(
        self, task_id: str, *, after_seq: int = 0, text: str = "", reasoning: str = ""
    ) -> Task:
        """Follow a task started elsewhere, from `after_seq` on (with the `text` and
        `reasoning` held)."""
        if task_id in self.live:
            return self.live[task_id]
        task = Task(self._on_gap)
        task.task_id, task.last_seq, task.text = task_id, after_seq, text
        task.reasoning = reasoning
        task._cancel = self._cancel_task
        self.live[task_id] = task

        async def follow() -> None:
            ack = await self._resubscribe(task)
            if ack is not None:
                task._start({"task_id": task_id, **ack})

        self._spawn(follow())
        return task

    async def _resubscribe(self, task: Task) -> dict[str, Any] | None:
        try:
            for _ in range(self.attempts):
                if task.result is not None or task.error is not None:
                    return None
                self.stats["resubscribes"] += 1
                try:
                    ack = await self._call(
                        "subscribe", {"task_id": task.task_id, "after_seq": task.last_seq}
                    )
                except PromptrelayError as exc:
                    self.live.pop(str(task.task_id), None)
                    task._fail(exc)
                    return None
                if ack is not None:
                    return ack
            return None  # still disconnected: the next connect resubscribes again
        finally:
            task.resyncing = False

    async def tool_result(self, task_id: str, call_id: str, output: str) -> dict[str, Any]:
        """Send one tool call's result (docs/tools.md); the ack names the continuation
        (`next_task_id`) and the step's calls still `pending`."""
        ack = await self._call(
            "tool_result", {"task_id": task_id, "call_id": call_id, "output": output}
        )
        if ack is None:
            raise PromptrelayError("timeout", "no answer to tool_result from the server")
        return ack

    async def _cancel_task(self, task_id: str) -> str:
        ack = await self._call("cancel", {"task_id": task_id})
        if ack is None:
            raise PromptrelayError("timeout", "no answer to cancel from the server")
        return str(ack["status"])
