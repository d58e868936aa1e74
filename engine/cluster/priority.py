"""Priority of waiting jobs: which priority a worker reads next, high first, with a bound on
how long a lower priority can be passed over.

Jobs wait only in the job streams (a gateway hands every task to the workers; a worker at
WORKER_CONCURRENCY leaves jobs there until a slot frees up). Each priority has its own stream
in every partition of the queue (engine/cluster/queue.py), each first in, first out. A worker
picks the priority with a `PriorityPicker`: high before normal before low, except that a
priority whose oldest job has been passed over by `bound` starts of higher-priority jobs on
that worker is read first. So a waiting job at the head of its priority starts after at most
`bound` higher-priority starts on every worker that is taking jobs.
"""

from __future__ import annotations

from engine.redis_keys import PRIORITIES

LEVELS = PRIORITIES  # highest first


class PriorityPicker:
    """Which stream to read next, and how many entries, so that no priority waits beyond
    `bound` higher-priority starts. Pure: no I/O, one per worker."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        # higher-priority jobs started since this level was last read (served or empty)
        self.passed = dict.fromkeys(LEVELS, 0)

    def order(self) -> list[str]:
        """Levels passed over `bound` times first (the lowest first), then by priority."""
        starved = [level for level in reversed(LEVELS) if self.passed[level] >= self.bound]
        return starved + [level for level in LEVELS if level not in starved]

    def next_read(self, wanted: int, skip: set[str]) -> tuple[str, int] | None:
        """(level, count) of the next read, or None when every level is in `skip`.

        The count is capped so that no lower level (not in `skip`) is passed over more
        than `bound` times by it."""
        for level in self.order():
            if level in skip:
                continue
            below = [lv for lv in LEVELS[LEVELS.index(level) + 1 :] if lv not in skip]
            cap = min([wanted, *(self.bound - self.passed[lv] for lv in below)])
            if cap > 0:
                return level, cap
        return None

    def record(self, level: str, started: int) -> None:
        """`level` was read and `started` of its jobs taken: it is no longer passed over,
        and every lower level was passed over `started` more times."""
        self.passed[level] = 0
        for lower in LEVELS[LEVELS.index(level) + 1 :]:
            self.passed[lower] += started
