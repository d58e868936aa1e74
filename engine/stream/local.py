"""Records of the tasks running in this process, handed to this process's relay in memory.

Every record still goes to Redis: the history for late subscribers and for recovery, the
live channel for the other nodes. A subscriber on the node that runs the task gets the same
record from its writer once Redis has taken it, without the PUBLISH, the pub/sub read and
the decode: the publisher hands over each chunk after its flush, `publish_done` the
terminal record after writing it. The relay decides which watches take records this way
(engine/stream/relay.py).

A task counts as running here from before its execute is acknowledged (so the socket's
watch, created right after, takes its records from here) until its runner has ended.
"""

from __future__ import annotations

from typing import Any, Protocol

from engine.stream.records import Record


class Receiver(Protocol):
    """Where the records go: the relay."""

    def deliver(self, task_id: str, record: Record) -> None:
        """A record of a task running here, just written to Redis."""

    def finished_here(self, task_id: str) -> None:
        """The task's runner has ended: no more records come from this process."""


class LocalFeed:
    """The tasks running in this process, and their way to this process's relay."""

    def __init__(self) -> None:
        self._handed: dict[str, bool] = {}  # running here -> a record was handed over
        self._receiver: Receiver | None = None

    def attach(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def start(self, task_id: str) -> None:
        self._handed[task_id] = False

    def runs(self, task_id: str) -> bool:
        return task_id in self._handed

    def unwritten(self, task_id: str) -> bool:
        """The task runs here and none of its records was handed over yet: a watch taking
        them from now on has no history to read (this runner writes all of its chunks)."""
        return self._handed.get(task_id) is False

    def hand(self, task_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Pass on a record Redis has taken; ignored for a task that does not run here."""
        if task_id in self._handed:
            self._handed[task_id] = True
            if self._receiver is not None:
                self._receiver.deliver(task_id, (kind, payload))

    def end(self, task_id: str) -> None:
        if self._handed.pop(task_id, None) is not None and self._receiver is not None:
            self._receiver.finished_here(task_id)
