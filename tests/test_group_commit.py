"""Group commit (db/groupcommit.py) on a real Postgres: the task rows and finalizes of
concurrent tasks go in one statement, each caller awaits its own result, a bad row fails
only its caller, a cancelled caller that was not sent leaves nothing behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from db import prices, users
from db import tasks as task_rows
from db.groupcommit import GroupCommit
from db.pool import DatabaseBusy, create_pool


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, min_size=2, max_size=4)
    try:
        yield p
    finally:
        await p.close()


def _new(user_id: uuid.UUID, **over: Any) -> task_rows.NewTask:
    fields: dict[str, Any] = {
        "task_id": uuid.uuid4(),
        "user_id": user_id,
        "provider": "simulated",
        "model": "m",
        "request": {"messages": [{"role": "user", "content": "hi"}]},
        "run_id": uuid.uuid4(),
        "create_run": True,
        "run_name": "a run",
        "events": [{"kind": "context_trimmed", "message": "one left out", "metadata": {"n": 1}}],
    }
    fields.update(over)
    return task_rows.NewTask(**fields)


def _outcome(i: int, **over: Any) -> task_rows.TaskOutcome:
    fields: dict[str, Any] = {
        "status": "completed",
        "text": f"answer {i}",
        "input_tokens": 3,
        "output_tokens": 2 + i,
        "usage_source": "provider",
        "cost_usd": Decimal("0.0000012345"),
        "last_seq": 1,
        "ttft_ms": 5,
        "latency_ms": 9,
        "finish_reason": "stop",
        "error": None,
        "validation_status": "skipped",
        "run_messages": [
            {"role": "user", "content": f"q{i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ],
        "events": [
            {"at": "2026-01-01T00:00:00+00:00", "level": "info", "kind": "finalized", "message": ""}
        ],
        "reasoning": f"thought {i}",
        "reasoning_tokens": 1,
    }
    fields.update(over)
    return task_rows.TaskOutcome(**fields)


def _group(pool: asyncpg.Pool, name: str) -> GroupCommit[Any, Any]:
    found = pool.__dict__[name]
    assert isinstance(found, GroupCommit)
    return found


async def test_concurrent_tasks_share_statements_and_each_lands(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        user = await users.ensure_user(conn, "group@test")
    rows = [_new(user.id) for _ in range(40)]
    created = await asyncio.gather(*(task_rows.create_task(pool, r) for r in rows))
    assert all(c is not None for c in created)  # each caller got its own run's created_at
    creates = _group(pool, "task_creates")
    assert creates.items == 40 and creates.statements < 40

    ends = [_outcome(i) for i in range(40)]
    landed = await asyncio.gather(
        *(task_rows.finalize_task(pool, r.task_id, e) for r, e in zip(rows, ends, strict=True))
    )
    assert landed == [True] * 40
    finalizes = _group(pool, "task_finalizes")
    assert finalizes.items == 40 and finalizes.statements < 40

    async with pool.acquire() as conn:
        for i, r in enumerate(rows):
            t = await conn.fetchrow("SELECT * FROM ai_tasks WHERE task_id = $1", r.task_id)
            assert (t["status"], t["response_text"]) == ("completed", f"answer {i}")
            assert (t["output_tokens"], t["total_tokens"]) == (2 + i, 5 + i)
            assert (t["reasoning_text"], t["reasoning_tokens"]) == (f"thought {i}", 1)
            assert t["cost_usd"] == Decimal("0.0000012345")
            run = await conn.fetchrow("SELECT * FROM ai_runs WHERE id = $1", r.run_id)
            assert run["created_at"] == created[i]
            assert (run["task_count"], run["total_tokens"], run["reasoning_tokens"]) == (
                1,
                5 + i,
                1,
            )
            assert [m["content"] for m in run["messages"]] == [f"q{i}", f"answer {i}"]
            kinds = await conn.fetch(
                "SELECT kind, metadata FROM task_events WHERE task_id = $1 ORDER BY id", r.task_id
            )
            assert [k["kind"] for k in kinds] == ["queued", "context_trimmed", "finalized"]
            assert kinds[0]["metadata"] == {"provider": "simulated", "model": "m"}
            assert kinds[1]["metadata"] == {"n": 1}
        usage = await conn.fetch("SELECT * FROM ai_usage_logs ORDER BY output_tokens")
        assert [u["output_tokens"] for u in usage] == [2 + i for i in range(40)]
        assert {u["tier"] for u in usage} == {"free"} and {
            u["reasoning_tokens"] for u in usage
        } == {1}


async def test_a_failing_row_fails_only_its_caller(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        user = await users.ensure_user(conn, "bad-row@test")
    good = [_new(user.id) for _ in range(6)]
    bad = _new(uuid.uuid4())  # no such user: its row breaks a foreign key
    results = await asyncio.gather(
        *(task_rows.create_task(pool, r) for r in [*good[:3], bad, *good[3:]]),
        return_exceptions=True,
    )
    assert isinstance(results[3], asyncpg.ForeignKeyViolationError)
    assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 3)
    async with pool.acquire() as conn:
        ids = {r["task_id"] for r in await conn.fetch("SELECT task_id FROM ai_tasks")}
        assert ids == {r.task_id for r in good}
        assert await conn.fetchval("SELECT count(*) FROM ai_runs") == 6

    # A finalize that breaks a check (negative tokens) among good ones: only it fails.
    ends: list[Any] = [_outcome(i) for i in range(6)]
    ends[2] = _outcome(2, input_tokens=-1)
    done = await asyncio.gather(
        *(task_rows.finalize_task(pool, r.task_id, e) for r, e in zip(good, ends, strict=True)),
        return_exceptions=True,
    )
    assert isinstance(done[2], asyncpg.CheckViolationError)
    assert [d for i, d in enumerate(done) if i != 2] == [True] * 5
    async with pool.acquire() as conn:
        status = await conn.fetchval(
            "SELECT status FROM ai_tasks WHERE task_id = $1", good[2].task_id
        )
        assert status == "running"  # still open: its runner's retry or a sweeper ends it
        assert await conn.fetchval("SELECT count(*) FROM ai_usage_logs") == 5


async def test_one_task_finalized_twice_in_one_tick_lands_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        user = await users.ensure_user(conn, "twice@test")
    rows = [_new(user.id) for _ in range(3)]
    await asyncio.gather(*(task_rows.create_task(pool, r) for r in rows))
    first = rows[0]
    results = await asyncio.gather(
        task_rows.finalize_task(pool, first.task_id, _outcome(0)),
        task_rows.finalize_task(pool, rows[1].task_id, _outcome(1)),
        task_rows.finalize_task(pool, first.task_id, _outcome(0, status="failed")),
        task_rows.finalize_task(pool, rows[2].task_id, _outcome(2)),
    )
    assert results == [True, True, False, True]
    async with pool.acquire() as conn:
        run = await conn.fetchrow("SELECT * FROM ai_runs WHERE id = $1", first.run_id)
        assert run["task_count"] == 1 and len(run["messages"]) == 2
        assert await conn.fetchval("SELECT count(*) FROM ai_usage_logs") == 3


async def test_two_tasks_of_one_run_in_one_statement_both_count(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        user = await users.ensure_user(conn, "one-run@test")
    asking = _new(user.id)
    await task_rows.create_task(pool, asking)
    # A tool continuation of the same run (it starts while the asking task runs).
    going_on = _new(
        user.id, run_id=asking.run_id, create_run=False, parent_task_id=asking.task_id, step=2
    )
    await task_rows.create_task(pool, going_on)
    landed = await asyncio.gather(
        task_rows.finalize_task(pool, asking.task_id, _outcome(1)),
        task_rows.finalize_task(pool, going_on.task_id, _outcome(2, cost_usd=None)),
    )
    assert landed == [True, True]
    assert _group(pool, "task_finalizes").statements == 1
    async with pool.acquire() as conn:
        run = await conn.fetchrow("SELECT * FROM ai_runs WHERE id = $1", asking.run_id)
    assert run["task_count"] == 2
    assert run["total_tokens"] == (3 + 3) + (3 + 4)
    assert run["reasoning_tokens"] == 2 and run["unpriced_tasks"] == 1
    assert run["total_cost_usd"] == Decimal("0.0000012345")
    assert [m["content"] for m in run["messages"]] == ["q1", "answer 1", "q2", "answer 2"]


async def test_cancelled_before_sent_writes_nothing_others_unaffected(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        user = await users.ensure_user(conn, "cancel@test")
    rows = [_new(user.id) for _ in range(5)]
    waiting = [asyncio.ensure_future(task_rows.create_task(pool, r)) for r in rows]
    await asyncio.sleep(0)  # each has handed its row over; none is sent yet
    waiting[1].cancel()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    async with pool.acquire() as conn:
        ids = {r["task_id"] for r in await conn.fetch("SELECT task_id FROM ai_tasks")}
    assert ids == {r.task_id for i, r in enumerate(rows) if i != 1}

    # Cancelled once its statement is on the way: the others' rows land all the same.
    more = [_new(user.id) for _ in range(5)]
    sent = [asyncio.ensure_future(task_rows.create_task(pool, r)) for r in more]
    for _ in range(3):
        await asyncio.sleep(0)
    sent[0].cancel()
    results = await asyncio.gather(*sent, return_exceptions=True)
    assert all(not isinstance(r, BaseException) for r in results[1:])
    await _group(pool, "task_creates").wait_idle()
    async with pool.acquire() as conn:
        for r in more[1:]:
            assert (
                await conn.fetchval("SELECT status FROM ai_tasks WHERE task_id = $1", r.task_id)
                == "running"
            )


async def test_postgres_out_of_reach_reaches_every_caller(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, acquire_timeout_s=0.2)
    try:
        async with pool.acquire() as conn:
            user = await users.ensure_user(conn, "busy@test")
        rows = [_new(user.id) for _ in range(4)]
        async with pool.acquire():  # the only connection is taken: the statement gets none
            results = await asyncio.gather(
                *(task_rows.create_task(pool, r) for r in rows), return_exceptions=True
            )
        # Every caller of the statement learns the failure and may try again, as alone.
        assert all(isinstance(r, DatabaseBusy) for r in results)
        assert _group(pool, "task_creates").statements == 1
        again = await asyncio.gather(*(task_rows.create_task(pool, r) for r in rows))
        assert all(c is not None for c in again)
    finally:
        await pool.close()


@pytest.mark.parametrize("size", [1, 3])
async def test_a_lone_item_uses_the_single_statement(pool: asyncpg.Pool, size: int) -> None:
    async with pool.acquire() as conn:
        user = await users.ensure_user(conn, f"lone{size}@test")
    rows = [_new(user.id) for _ in range(size)]
    for r in rows:  # one at a time: nothing to group
        await task_rows.create_task(pool, r)
    creates = _group(pool, "task_creates")
    assert (creates.statements, creates.items) == (size, size)


async def test_concurrent_price_reads_share_one_statement(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await prices.set_price(conn, "openai", "a", prices.ModelPrice(Decimal("1"), Decimal("2")))
        await prices.set_price(
            conn, "openai", "b", prices.ModelPrice(Decimal("3"), Decimal("4"), Decimal("0.5"))
        )
    wanted = [("openai", "a"), ("openai", "b"), ("openai", "none"), ("openai", "a")]
    found = await asyncio.gather(*(prices.current_price(pool, p, m) for p, m in wanted))
    assert found == [
        prices.ModelPrice(Decimal("1"), Decimal("2")),
        prices.ModelPrice(Decimal("3"), Decimal("4"), Decimal("0.5")),
        None,
        prices.ModelPrice(Decimal("1"), Decimal("2")),
    ]
    reads = _group(pool, "price_reads")
    assert (reads.statements, reads.items) == (1, 4)
    # A price set since is what the next read sees: nothing is kept between reads.
    async with pool.acquire() as conn:
        await prices.set_price(
            conn, "openai", "none", prices.ModelPrice(Decimal("5"), Decimal("6"))
        )
    assert await prices.current_price(pool, "openai", "none") == prices.ModelPrice(
        Decimal("5"), Decimal("6")
    )


async def test_an_item_waits_for_the_statement_holding_its_key_to_end() -> None:
    """A task's second finalize is not sent while its first is still in flight (the two
    statements run on two connections: the later one could reach Postgres first)."""
    sent: list[list[str]] = []
    release = asyncio.Event()

    async def run_many(items: list[str]) -> list[str]:
        sent.append(list(items))
        if len(sent) == 1:
            await release.wait()  # the first statement is slow
        return items

    async def run_one(item: str) -> str:
        return (await run_many([item]))[0]

    group: GroupCommit[str, str] = GroupCommit(run_many, run_one, key=lambda i: i[0])
    first = asyncio.ensure_future(asyncio.gather(group.submit("a1"), group.submit("b1")))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(asyncio.gather(group.submit("a2"), group.submit("c1")))
    await asyncio.sleep(0.01)
    # c1 may go while the first statement runs; a2 (key "a", in flight) may not.
    assert sent == [["a1", "b1"], ["c1"]]
    release.set()
    assert await first == ["a1", "b1"] and await second == ["a2", "c1"]
    assert sent[2:] == [["a2"]]
