"""Which text of which task goes into the next chunk: pure bookkeeping, no I/O.

Tasks append deltas; `take` hands out one chunk per task that has new text (all its text
since the last chunk, with the task's next seq); `published` moves the seqs on once the
chunks are written. A task's tool-call pieces and reasoning are records of the same
sequence: text, pieces and reasoning keep their order, consecutive text goes into one
chunk, consecutive pieces of one call into one piece and consecutive reasoning into one
record. The flush window grows with the number of tasks streaming, so that a busy node
sends fewer, larger chunks (each chunk costs the same to relay whatever its length) and an
idle one sends each token at once; a task's first chunk never waits for
more than the base window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast

# The window is one base window at this many streaming tasks, in proportion below and
# above it, up to MAX_WINDOW_S.
TASKS_PER_STEP = 100
MAX_WINDOW_S = 0.1


@dataclass(frozen=True)
class CallRef:
    """Which tool call a piece belongs to."""

    index: int
    call_id: str
    name: str


REASONING: Literal["reasoning"] = "reasoning"  # the channel of a reasoning part
Channel = CallRef | Literal["reasoning"]  # where a part that is not answer text goes
Part = str | tuple[Channel, str]


@dataclass(frozen=True)
class Chunk:
    task_id: str
    seq: int
    text: str  # the chunk's text, the piece's argument text, or the reasoning text
    call: CallRef | None = None  # set for a piece of a tool call
    reasoning: bool = False  # set for a piece of reasoning


@dataclass
class _Text:
    parts: list[Part] = field(default_factory=list)
    seq: int = 0  # seq of the last chunk published
    size: int = 0  # characters appended and not yet published
    pieces: bool = False  # tool-call pieces or reasoning are queued (else all text)


class Coalescer:
    """The unpublished text of every open task, in append order."""

    def __init__(self, base_window_s: float) -> None:
        self.base_window_s = base_window_s
        self._texts: dict[str, _Text] = {}
        self._dirty: dict[str, _Text] = {}  # insertion order: first appended, first sent
        self.buffered = 0  # characters appended and not yet published, every task

    def open(self, task_id: str) -> None:
        self._texts[task_id] = _Text()

    def close(self, task_id: str) -> int:
        """Forget the task; returns the seq of its last published chunk."""
        self._dirty.pop(task_id, None)
        return self._texts.pop(task_id).seq

    def append(self, task_id: str, text: str) -> bool:
        """Queue `text` for the task's next chunk; True when the task had nothing queued."""
        entry = self._texts[task_id]
        entry.parts.append(text)
        entry.size += len(text)
        self.buffered += len(text)
        if task_id in self._dirty:
            return False
        self._dirty[task_id] = entry
        return True

    def append_call(self, task_id: str, call: Channel, arguments: str) -> bool:
        """Queue a piece of a tool call, or reasoning with `REASONING` (in order with the
        text); True as for `append`."""
        entry = self._texts[task_id]
        entry.parts.append((call, arguments))
        entry.pieces = True
        entry.size += len(arguments)
        self.buffered += len(arguments)
        if task_id in self._dirty:
            return False
        self._dirty[task_id] = entry
        return True

    def is_queued(self, task_id: str) -> bool:
        return task_id in self._dirty

    def last_seq(self, task_id: str) -> int:
        return self._texts[task_id].seq

    def take(self) -> list[Chunk]:
        """One chunk per task with new text, with its next seq; the text leaves the queue."""
        chunks: list[Chunk] = []
        for task_id, entry in self._dirty.items():
            if entry.pieces:
                chunks.extend(_records(task_id, entry.seq, entry.parts))
                entry.pieces = False
            else:
                text = "".join(cast(list[str], entry.parts))  # text only: no piece queued
                chunks.append(Chunk(task_id, entry.seq + 1, text))
            entry.parts = []
        self._dirty = {}
        return chunks

    def published(self, chunks: list[Chunk]) -> None:
        """The chunks are written: their tasks' seqs move on."""
        for chunk in chunks:
            self.buffered -= len(chunk.text)
            entry = self._texts.get(chunk.task_id)
            if entry is not None:
                entry.seq = chunk.seq
                entry.size -= len(chunk.text)

    def dropped(self, chunks: list[Chunk]) -> None:
        """The chunks will never be written (a shutdown in a hurry): stop counting them."""
        for chunk in chunks:
            self.buffered -= len(chunk.text)

    def window_s(self) -> float:
        """How long to gather text before the next flush: COALESCE_MS at 100 streaming
        tasks, in proportion to their number (one task: at once; 500: five windows, up to
        MAX_WINDOW_S), and never more than COALESCE_MS while a task waits for its first
        word."""
        if not self.base_window_s:
            return 0.0
        window = self.base_window_s * len(self._texts) / TASKS_PER_STEP
        if any(entry.seq == 0 for entry in self._dirty.values()):
            return min(window, self.base_window_s)  # someone waits for a first word
        return min(window, max(MAX_WINDOW_S, self.base_window_s))


def _records(task_id: str, seq: int, parts: list[Part]) -> list[Chunk]:
    """Text, tool-call pieces and reasoning in order: runs of text joined, runs of one
    call's pieces joined, runs of reasoning joined, each with the next seq."""
    out: list[Chunk] = []
    for part in parts:
        channel, text = (None, part) if isinstance(part, str) else part
        call = channel if isinstance(channel, CallRef) else None
        reasoning = channel == REASONING
        last = out[-1] if out else None
        if last is not None and last.call == call and last.reasoning == reasoning:
            out[-1] = Chunk(task_id, last.seq, last.text + text, call, reasoning)
        else:
            out.append(Chunk(task_id, (last.seq if last else seq) + 1, text, call, reasoning))
    return out
