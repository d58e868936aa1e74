"""One task as the client sees it: chunks in seq order with no gap and no repeat, the text
so far, the model's reasoning apart from it, the final `task_done`, and a record of what
the server sent out of order (which the client repaired)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from promptrelay_client.errors import PromptrelayError

TaskDone = dict[str, Any]  # the `task_done` payload (clients/typescript/protocol.d.ts: TaskDone)


@dataclass(frozen=True)
class Chunk:
    """One chunk in order; `at` is `time.monotonic()` when it reached the client."""

    seq: int
    text: str
    at: float = field(default=0.0, compare=False)


@dataclass
class ToolCallStream:
    """A tool call as the model writes it (`task_tool_call`): `arguments` is the argument
    text so far; the parsed call is in `task_done`'s `tool_calls`."""

    call_id: str
    index: int
    name: str
    arguments: str = ""


AnomalyKind = Literal["repeat", "gap", "missing", "after_done"]


@dataclass(frozen=True)
class Anomaly:
    """An event of the task that broke the stream contract as it reached the client.

    - `repeat`: a `task_chunk` whose `seq` the task already held (dropped);
    - `gap`: a `task_chunk` past the next `seq` (dropped; the task is resubscribed after
      the last seq held, and the missing chunks come again);
    - `missing`: a `task_done` whose `last_seq` or `text` covers chunks that never came
      (its text is kept, the rest as one last chunk);
    - `after_done`: a `task_chunk` or a second `task_done` after the task's `task_done`
      (dropped).

    `seq` is the chunk's seq (a `task_done`'s `last_seq`), `held` the last seq the task
    held in order when it came.
    """

    kind: AnomalyKind
    seq: int
    held: int


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A task may be iterated and never awaited: its error then counts as seen.
    if not future.cancelled():
        future.exception()


class Task:
    """Iterate it (`async for chunk in task`), await `task.done`, `await task.cancel()`.

    The model's reasoning (`task_reasoning`, when the request asked for it with
    `settings.reasoning`) never enters the chunks or `text`: it accumulates in `reasoning`
    (its pieces in `reasoning_chunks`), and `on_reasoning`, when set, is called with each
    piece (a `Chunk`) in order, as it comes. Set it right after `execute` returns."""

    def __init__(self, on_gap: Callable[[Task], None], request_id: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.request_id = request_id
        self.task_id: str | None = None
        self.run_id: str | None = None
        self.text = ""
        self.last_seq = 0
        self.chunks: list[Chunk] = []
        self.reasoning = ""  # the model's reasoning so far, apart from `text`
        self.reasoning_chunks: list[Chunk] = []
        self.on_reasoning: Callable[[Chunk], Any] | None = None
        self.tool_calls: dict[str, ToolCallStream] = {}  # by call_id, in order of arrival
        self.anomalies: list[Anomaly] = []
        self.result: TaskDone | None = None
        self.done_at: float | None = None  # time.monotonic() when task_done came
        self.error: PromptrelayError | None = None
        self.started: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.done: asyncio.Future[TaskDone] = loop.create_future()
        self.started.add_done_callback(_retrieve)
        self.done.add_done_callback(_retrieve)
        self._changed = asyncio.Event()
        self._on_gap = on_gap
        self._cancel: Callable[[str], Any] | None = None
        self.resyncing = False

    @property
    def status(self) -> str:
        if self.result is not None:
            return str(self.result["status"])
        if self.error is not None:
            return "failed"
        return "running" if self.task_id else "starting"

    async def cancel(self) -> str:
        """Ask the server to cancel; returns the status it answered."""
        await self.started
        if self.result is not None:
            return str(self.result["status"])
        assert self._cancel is not None and self.task_id is not None
        status: str = await self._cancel(self.task_id)
        return status

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        index = 0
        while True:
            if index < len(self.chunks):
                index += 1
                yield self.chunks[index - 1]
                continue
            if self.error is not None:
                raise self.error
            if self.result is not None:
                return
            self._changed.clear()
            await self._changed.wait()

    # -- fed by the client ------------------------------------------------------------

    def _start(self, ack: dict[str, Any]) -> None:
        self.task_id = str(ack["task_id"])
        self.run_id = ack.get("run_id") or self.run_id
        if not self.started.done():
            self.started.set_result(ack)

    def _chunk(self, payload: dict[str, Any], at: float, reasoning: bool = False) -> None:
        seq = payload.get("seq")
        if not isinstance(seq, int):
            return
        if seq == self.last_seq + 1 and self.result is None:  # the usual case, first
            self.last_seq = seq
            if "arguments_delta" in payload:  # a task_tool_call: same sequence as chunks
                self._tool_call(payload)
            elif reasoning:  # a task_reasoning: same sequence, never in the text
                self._reasoning(Chunk(seq, str(payload.get("text", "")), at))
            else:
                text = str(payload.get("text", ""))
                self.text += text
                self.chunks.append(Chunk(seq, text, at))
            self._changed.set()
            return
        if self.result is not None:
            self.anomalies.append(Anomaly("after_done", seq, self.last_seq))
        elif seq <= self.last_seq:
            self.anomalies.append(Anomaly("repeat", seq, self.last_seq))
        else:
            self.anomalies.append(Anomaly("gap", seq, self.last_seq))
            self._on_gap(self)  # ask again from what we have; later ones come again

    def _tool_call(self, payload: dict[str, Any]) -> None:
        call_id = str(payload.get("call_id"))
        call = self.tool_calls.get(call_id)
        if call is None:
            call = ToolCallStream(call_id, int(payload.get("index", 0)), str(payload.get("name")))
            self.tool_calls[call_id] = call
        call.arguments += str(payload.get("arguments_delta", ""))

    def _reasoning(self, piece: Chunk) -> None:
        self.reasoning += piece.text
        self.reasoning_chunks.append(piece)
        if self.on_reasoning is not None:
            self.on_reasoning(piece)

    def _done(self, done: TaskDone, at: float) -> None:
        last_seq = int(done.get("last_seq", self.last_seq))
        if self.result is not None:
            self.anomalies.append(Anomaly("after_done", last_seq, self.last_seq))
            return
        text = str(done.get("text", ""))
        if last_seq != self.last_seq or text != self.text:
            self.anomalies.append(Anomaly("missing", last_seq, self.last_seq))
        # task_done carries the whole text: what a resume could no longer replay (expired
        # history) arrives as one last chunk, so the chunks always add up to the text.
        if len(text) > len(self.text) and text.startswith(self.text):
            self.chunks.append(Chunk(last_seq, text[len(self.text) :], at))
        self.text = text
        # The same for the reasoning: what a resume could not replay comes as one last piece.
        thought = done.get("reasoning")
        if isinstance(thought, str) and thought.startswith(self.reasoning):
            if len(thought) > len(self.reasoning):
                self._reasoning(Chunk(last_seq, thought[len(self.reasoning) :], at))
        self.last_seq = last_seq
        self.result = done
        self.done_at = at
        if not self.done.done():
            self.done.set_result(done)
        self._changed.set()

    def _fail(self, error: PromptrelayError) -> None:
        if self.result is not None or self.error is not None:
            return
        self.error = error
        for future in (self.started, self.done):
            if not future.done():
                future.set_exception(error)
        self._changed.set()
