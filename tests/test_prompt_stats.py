"""`GET /v1/prompts/{id}/stats` over known tasks written straight into Postgres: every
figure, per version and in total, is checked exactly, and so are the time range, the
owner's scope and the errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest_asyncio

from db.pool import connect
from engine.protocol.conversations import PromptStats
from tests.conftest import Server

DAY = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# (version, status, validation, input, output, cost, ttft, latency, created)
TASKS: list[tuple[Any, ...]] = [
    (1, "completed", "passed", 10, 20, Decimal("0.0010000000"), 100, 1000, DAY),
    (1, "completed", "failed", 30, 40, Decimal("0.0030000000"), 300, 3000, DAY),
    (1, "failed", "skipped", 5, 0, None, None, 500, DAY),
    (2, "completed", "passed", 1, 2, Decimal("0.0000000001"), 50, 200, DAY),
    (2, "completed", "passed", 3, 4, Decimal("0.0000000002"), 150, 400, DAY),
    (2, "cancelled", None, 7, 8, Decimal("0.0000000003"), 250, 600, DAY),
    (2, "completed", "passed", 100, 100, Decimal("1"), 10, 10, DAY - timedelta(days=3)),
]


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def seed(conn: asyncpg.Connection, email: str) -> tuple[uuid.UUID, uuid.UUID]:
    user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
    prompt_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO prompts (id, user_id, name, latest_version) VALUES ($1, $2, 'p', 2)",
        prompt_id,
        user_id,
    )
    for task in TASKS:
        await insert_task(conn, user_id, prompt_id, *task)
    return user_id, prompt_id


async def insert_task(
    conn: asyncpg.Connection, user_id: uuid.UUID, prompt_id: uuid.UUID, *row: Any
) -> None:
    version, status, validation, tokens_in, tokens_out, cost, ttft, latency, created = row
    await conn.execute(
        "INSERT INTO ai_tasks (task_id, user_id, prompt_id, prompt_version, provider, model,"
        " status, request, input_tokens, output_tokens, total_tokens, cost_usd, ttft_ms,"
        " latency_ms, validation_status, created_at)"
        " VALUES ($1, $2, $3, $4, 'simulated', 's', $5, '{}', $6, $7, $6::int + $7::int, $8,"
        " $9, $10, $11, $12)",
        uuid.uuid4(),
        user_id,
        prompt_id,
        version,
        status,
        tokens_in,
        tokens_out,
        cost,
        ttft,
        latency,
        validation,
        created,
    )


def row(version: int | None, **figures: Any) -> dict[str, Any]:
    return {"version": version, **figures}


V1 = row(
    1,
    executions=3,
    completed=2,
    failed=1,
    cancelled=0,
    validation_passed=1,
    validation_failed=1,
    validation_pass_rate=0.5,
    latency_p50_ms=1000.0,  # of 500, 1000, 3000
    latency_p95_ms=2800.0,  # 1000 + 0.9 * 2000
    ttft_p50_ms=200.0,  # of 100, 300 (the failed task had none)
    ttft_p95_ms=290.0,
    input_tokens=45,
    output_tokens=60,
    total_tokens=105,
    priced_executions=2,
    total_cost_usd="0.004",
    average_cost_usd="0.002",
)
V2 = row(
    2,
    executions=3,
    completed=2,
    failed=0,
    cancelled=1,
    validation_passed=2,
    validation_failed=0,
    validation_pass_rate=1.0,
    latency_p50_ms=400.0,
    latency_p95_ms=580.0,
    ttft_p50_ms=150.0,
    ttft_p95_ms=240.0,
    input_tokens=11,
    output_tokens=14,
    total_tokens=25,
    priced_executions=3,
    total_cost_usd="0.0000000006",
    average_cost_usd="0.0000000002",
)
TOTAL = row(
    None,
    executions=6,
    completed=4,
    failed=1,
    cancelled=1,
    validation_passed=3,
    validation_failed=1,
    validation_pass_rate=0.75,
    latency_p50_ms=550.0,  # of 200, 400, 500, 600, 1000, 3000
    latency_p95_ms=2500.0,  # 1000 + 0.75 * 2000
    ttft_p50_ms=150.0,  # of 50, 100, 150, 250, 300
    ttft_p95_ms=290.0,
    input_tokens=56,
    output_tokens=74,
    total_tokens=130,
    priced_executions=5,
    total_cost_usd="0.0040000006",
    average_cost_usd="0.0008000001",  # 0.0040000006 / 5, rounded to 10 places
)


async def test_prompt_stats_every_figure_exactly(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key("stats@history")
    other = await server.new_key("other@history")
    conn = await connect(server.settings.database_url or "")
    try:
        _, prompt_id = await seed(conn, "stats@history")
    finally:
        await conn.close()
    headers = {"Authorization": f"Bearer {key}"}
    base = f"{server.url}/v1/prompts/{prompt_id}/stats"
    window = "?from=2026-06-01&to=2026-06-02"
    async with http.get(base + window, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        stats = await resp.json()
    PromptStats.model_validate(stats)
    assert stats["from"] == "2026-06-01T00:00:00+00:00"
    assert stats["to"] == "2026-06-02T00:00:00+00:00"
    assert stats["versions"] == [V1, V2]
    assert stats["total"] == TOTAL

    async with http.get(base, headers=headers) as resp:  # no range: the older task too
        everything = await resp.json()
    assert everything["total"]["executions"] == 7
    assert everything["total"]["total_cost_usd"] == "1.0040000006"
    assert [v["executions"] for v in everything["versions"]] == [3, 4]

    async with http.get(base + "?from=2030-01-01", headers=headers) as resp:
        empty = await resp.json()
    assert empty["versions"] == []
    assert empty["total"] == row(
        None,
        executions=0,
        completed=0,
        failed=0,
        cancelled=0,
        validation_passed=0,
        validation_failed=0,
        validation_pass_rate=None,
        latency_p50_ms=None,
        latency_p95_ms=None,
        ttft_p50_ms=None,
        ttft_p95_ms=None,
        input_tokens=0,
        output_tokens=0,
        total_tokens=0,
        priced_executions=0,
        total_cost_usd=None,
        average_cost_usd=None,
    )

    for path, status, code in [
        (base + "?from=soon", 400, "invalid_request"),
        (base + "?from=2026-06-02&to=2026-06-01", 400, "invalid_request"),
        (f"{server.url}/v1/prompts/{uuid.uuid4()}/stats", 404, "not_found"),
        (f"{server.url}/v1/prompts/nope/stats", 404, "not_found"),
    ]:
        async with http.get(path, headers=headers) as resp:
            answer = await resp.json()
        assert resp.status == status and answer["error"]["code"] == code, (path, answer)
    async with http.get(base, headers={"Authorization": f"Bearer {other}"}) as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
