"""Where output validations run: worker processes with a deadline, shared fairly by users.

A JSON Schema `pattern` (and `patternProperties`, `format: regex`) runs in Python's `re`,
whose catastrophic backtracking cannot be interrupted from another thread. So every
validation of a task's text runs in a separate process (a `pebble` pool); one that outlives
`VALIDATION_TIMEOUT_S` has its worker killed (the pool starts a fresh one) and ends as a
failed validation whose error has `reason: "timeout"`. The event loop only waits.

Fairness: a user has at most `VALIDATION_PER_USER` validations in the pool at once; the
rest of theirs wait in their own queue, and the pool's free workers go to users in the
order they asked (asyncio's semaphores are FIFO). With one slot per user, another user
waits at most about one timeout per user ahead of them, however many validations one user
has queued.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import CancelledError as FutureCancelled
from typing import Any
from uuid import UUID

from pebble import ProcessExpired, ProcessPool

from engine.prompts.validation import SKIPPED, ValidationResult, validate_text

log = logging.getLogger(__name__)


def timeout_result(timeout_s: float) -> ValidationResult:
    """The validation ran out of time: failed, with `reason: "timeout"`."""
    return ValidationResult(
        "failed",
        [
            {
                "type": "timeout",
                "reason": "timeout",
                "message": f"the validation took longer than {timeout_s:g} s",
            }
        ],
    )


INTERNAL = ValidationResult(
    "failed", [{"type": "internal", "message": "the validation could not run"}]
)


class _UserSlots:
    """A semaphore per user, dropped when nobody holds or waits for it."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._slots: dict[UUID | None, tuple[asyncio.Semaphore, int]] = {}

    def enter(self, user_id: UUID | None) -> asyncio.Semaphore:
        sem, users = self._slots.get(user_id, (asyncio.Semaphore(self.per_user), 0))
        self._slots[user_id] = (sem, users + 1)
        return sem

    def leave(self, user_id: UUID | None) -> None:
        sem, users = self._slots[user_id]
        if users <= 1:
            del self._slots[user_id]
        else:
            self._slots[user_id] = (sem, users - 1)


class ValidationPool:
    """Worker processes that run `validate_text`, started on first use."""

    def __init__(self, workers: int = 2, timeout_s: float = 2.0, per_user: int = 1) -> None:
        self.workers = workers
        self.timeout_s = timeout_s
        self._users = _UserSlots(per_user)
        self._free = asyncio.Semaphore(workers)
        self._pool: ProcessPool | None = None

    def _processes(self) -> ProcessPool:
        if self._pool is None:
            # spawn: a fork of a process with threads and an event loop is not safe.
            self._pool = ProcessPool(
                max_workers=self.workers, context=multiprocessing.get_context("spawn")
            )
        return self._pool

    async def validate(
        self, user_id: UUID | None, specs: Sequence[dict[str, Any]], text: str, status: str
    ) -> ValidationResult:
        """What finalize records: only a completed task's text is validated."""
        if not specs or status != "completed":
            return SKIPPED
        mine = self._users.enter(user_id)
        try:
            async with mine, self._free:
                return await self._run(list(specs), text)
        finally:
            self._users.leave(user_id)

    async def _run(self, specs: list[dict[str, Any]], text: str) -> ValidationResult:
        future = self._processes().schedule(validate_text, (text, specs), timeout=self.timeout_s)
        try:
            result: ValidationResult = await asyncio.wrap_future(future)
            return result
        except TimeoutError:
            log.warning("output validation ran out of time (%g s)", self.timeout_s)
            return timeout_result(self.timeout_s)
        except asyncio.CancelledError:
            future.cancel()  # type: ignore[no-untyped-call]  # kills the worker if it had started
            raise
        except (ProcessExpired, FutureCancelled, OSError, RuntimeError) as exc:
            log.warning("output validation could not run (%s)", type(exc).__name__)
            return INTERNAL
        except Exception:  # finalize must go on: a schema that cannot run fails the validation
            log.exception("output validation could not run")
            return INTERNAL

    async def close(self) -> None:
        """Stop the workers (a running validation is killed)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]
            await asyncio.to_thread(pool.join, 5)
