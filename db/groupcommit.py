"""Group commit: the writes of many concurrent callers in one statement, each caller still
awaiting its own result.

A caller hands its item to a `GroupCommit` and awaits it. Items that arrive while the
statements in flight run wait for the next one, which takes all of them (up to a batch's
size): at a low rate every item goes alone and waits for nothing; under a burst, one
statement (one round trip, one commit) serves a whole tick's worth of callers. The next
statement is started from the loop's next turn (`call_soon`), never from a timer, so no item
waits for a clock.

Durability is each caller's: `submit` returns only once the statement that holds its item
has committed, with that item's own result. A statement that fails as a whole (a constraint
one row broke, a deadlock) is run again item by item, so each caller gets its own outcome and
a bad row fails only its caller; a failure that any retry would meet (the connection, the
server) is given to every caller of the batch, which retries as it would have alone. A caller
that is cancelled before its statement is sent leaves nothing written; once sent, the
statement runs on for the others, its cancellation changes nothing for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import fields
from decimal import Decimal
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg

from db.pool import DATABASE_DOWN

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")  # its result


class GroupCommit(Generic[I, R]):
    """Items of concurrent callers, written `max_batch` at a time by `run_many`, with at
    most `max_in_flight` statements at once; `run_one` writes a lone item, and each item of a
    batch that failed as a whole. `run_many` may give an exception as an item's result: that
    item's caller gets it raised. `key` keeps two items of one key (one task's two
    finalizes) apart: the later one is sent only once the statement holding the earlier
    one has ended (two statements in flight run on two connections, in no set order)."""

    def __init__(
        self,
        run_many: Callable[[list[I]], Awaitable[Sequence[R]]],
        run_one: Callable[[I], Awaitable[R]],
        *,
        key: Callable[[I], Hashable],
        shared_errors: tuple[type[BaseException], ...] = (),
        max_batch: int = 100,
        max_in_flight: int = 2,
    ) -> None:
        self._run_many = run_many
        self._run_one = run_one
        self._key = key
        self._shared_errors = shared_errors
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._in_flight: dict[asyncio.Task[None], list[Hashable]] = {}  # with their keys
        self._busy: set[Hashable] = set()  # the keys of the items in flight
        self._kick_scheduled = False
        self.statements = 0  # statements run, batches and single items (for tests, stats)
        self.items = 0

    async def submit(self, item: I) -> R:
        """Write `item` with whatever else is waiting; its own result, or its own error."""
        fut = self.enqueue(item)
        try:
            return await fut
        except asyncio.CancelledError:
            self.withdraw(fut)
            raise

    def enqueue(self, item: I) -> asyncio.Future[R]:
        """Hand `item` over without waiting: items enqueued in one go share a statement, in
        this order. Await the future; `withdraw` it if the wait is given up."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        self._schedule()
        return fut

    def withdraw(self, fut: asyncio.Future[R]) -> None:
        """Take an item back that is not sent yet (nothing of it gets written)."""
        self._pending = [e for e in self._pending if e[1] is not fut]
        fut.cancel()

    async def wait_idle(self) -> None:
        """Until every statement started (and every item waiting) has been written."""
        while self._in_flight or self._pending:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
            else:
                await asyncio.sleep(0)

    def _schedule(self) -> None:
        if not self._kick_scheduled:
            self._kick_scheduled = True
            asyncio.get_running_loop().call_soon(self._kick)

    def _kick(self) -> None:
        self._kick_scheduled = False
        while self._pending and len(self._in_flight) < self._max_in_flight:
            batch, keys = self._take()
            if not batch:
                break
            task = asyncio.get_running_loop().create_task(self._write(batch))
            self._in_flight[task] = keys
            task.add_done_callback(self._done)

    def _take(self) -> tuple[list[tuple[I, asyncio.Future[R]]], list[Hashable]]:
        """The next batch, and its keys (now busy)."""
        batch: list[tuple[I, asyncio.Future[R]]] = []
        keys: list[Hashable] = []
        rest: list[tuple[I, asyncio.Future[R]]] = []
        for entry in self._pending:
            if entry[1].done():  # its caller was cancelled
                continue
            k = self._key(entry[0])
            if len(batch) < self._max_batch and k not in self._busy:
                self._busy.add(k)
                keys.append(k)
                batch.append(entry)
            else:
                rest.append(entry)
        self._pending = rest
        return batch, keys

    def _done(self, task: asyncio.Task[None]) -> None:
        self._busy.difference_update(self._in_flight.pop(task, ()))
        if not task.cancelled() and task.exception() is not None:
            log.error("group commit failed", exc_info=task.exception())
        if self._pending:
            self._schedule()

    async def _write(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        self.statements += 1
        self.items += len(items)
        try:
            if len(items) == 1:
                results: Sequence[R] = [await self._run_one(items[0])]
            else:
                results = await self._run_many(items)
        except self._shared_errors as exc:
            for _, fut in batch:
                _fail(fut, exc)
            return
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as exc:
            if len(items) == 1:
                _fail(batch[0][1], exc)
                return
            log.info("a grouped statement of %d failed (%r); one by one", len(items), exc)
            await self._one_by_one(batch)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):  # that item's own error (a pipeline's)
                _fail(fut, result)
            elif not fut.done():
                fut.set_result(result)

    async def _one_by_one(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        async def one(item: I, fut: asyncio.Future[R]) -> None:
            self.statements += 1
            try:
                result = await self._run_one(item)
            except Exception as exc:
                _fail(fut, exc)
            else:
                if not fut.done():
                    fut.set_result(result)

        await asyncio.gather(*(one(item, fut) for item, fut in batch))


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def pool_group(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    run_many: Callable[[asyncpg.Pool, list[I]], Awaitable[Sequence[R]]],
    run_one: Callable[[asyncpg.Pool, I], Awaitable[R]],
    *,
    key: Callable[[I], Hashable],
) -> GroupCommit[I, R] | None:
    """The pool's group commit called `name` (made on first use), whose statements run on
    the pool and whose Postgres outages reach every caller; None when `conn` cannot carry
    one (a connection, a plain asyncpg pool): the caller writes alone."""
    if not isinstance(conn, asyncpg.Pool) or not getattr(conn, "group_commits", False):
        return None
    pool = conn
    found: GroupCommit[I, R] | None = vars(pool).get(name)
    if found is None:
        found = vars(pool)[name] = GroupCommit(
            lambda items: run_many(pool, items),
            lambda item: run_one(pool, item),
            key=key,
            shared_errors=DATABASE_DOWN,
        )
    return found


def json_row(n: int, record: Any, **extra: Any) -> dict[str, Any]:
    """A dataclass's fields as one row of a grouped statement's jsonb array (`n`: its
    place): ids and amounts as text, `extra` added or put in place of a field."""
    row: dict[str, Any] = {"n": n}
    for f in fields(record):
        value = getattr(record, f.name)
        row[f.name] = str(value) if isinstance(value, UUID | Decimal) else value
    row.update(extra)
    return row
