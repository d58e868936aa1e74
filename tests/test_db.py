"""Database behaviour that must hold under races and retries."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg

from db import tasks as task_rows
from db import users
from db.migrate import apply_migrations, migration_files
from db.pool import connect, create_pool
from tests.conftest import Infra, Server


async def test_concurrent_migrations_apply_once(infra: Infra) -> None:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(infra.admin_url)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        conns = [await connect(infra.database_url(name)) for _ in range(3)]
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        applied = sorted(n for r in results for n in r)
        assert applied == sorted(n for n, _ in migration_files())
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
        for conn in conns:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_keys_are_stored_only_as_hashes(server: Server) -> None:
    conn = await connect(server.settings.database_url or "")
    try:
        user = await users.ensure_user(conn, "hash@test")
        new = await users.create_api_key(conn, user.id, "k")
        dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM api_keys t")
        assert new.key not in dump and new.key[10:] not in dump
        assert (await users.user_for_key(conn, new.key)).id == user.id  # type: ignore[union-attr]
        assert await users.user_for_key(conn, new.key + "x") is None
    finally:
        await conn.close()


async def test_finalize_is_idempotent(server: Server) -> None:
    conn = await connect(server.settings.database_url or "")
    try:
        user = await users.ensure_user(conn, "fin@test")
        task_id, run_id = uuid.uuid4(), uuid.uuid4()
        await task_rows.create_task(
            conn,
            task_rows.NewTask(
                task_id=task_id,
                user_id=user.id,
                provider="simulated",
                model="m",
                request={"messages": []},
                run_id=run_id,
                create_run=True,
            ),
        )
        outcome = task_rows.TaskOutcome(
            status="completed",
            text="hi",
            input_tokens=3,
            output_tokens=2,
            usage_source="provider",
            cost_usd=Decimal("0.5"),
            last_seq=1,
            ttft_ms=1,
            latency_ms=2,
            finish_reason="stop",
            error=None,
            validation_status="skipped",
            run_messages=[{"role": "assistant", "content": "hi"}],
            events=[],
        )
        pool = await create_pool(server.settings.database_url or "", min_size=3, max_size=3)
        try:
            results = await asyncio.gather(
                *(task_rows.finalize_task(pool, task_id, outcome) for _ in range(3))
            )
        finally:
            await pool.close()
        assert sorted(results) == [False, False, True]
        run = await conn.fetchrow("SELECT * FROM ai_runs WHERE id = $1", run_id)
        assert run["task_count"] == 1 and run["total_tokens"] == 5
        assert run["total_cost_usd"] == Decimal("0.5") and len(run["messages"]) == 1
        assert await conn.fetchval("SELECT count(*) FROM ai_usage_logs") == 1
    finally:
        await conn.close()
