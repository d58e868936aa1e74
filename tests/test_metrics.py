"""`GET /metrics`: what the server counts while real clients run real tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from engine.metrics import Metrics
from engine.settings import Settings
from tests.conftest import Client, Server, assert_intact, start_server, stop_server
from tests.fakes.openai_server import FakeOpenAI


async def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def adhoc(n: int, max_tokens: int = 10) -> dict[str, object]:
    return {
        "messages": [{"role": "user", "content": f"count {n}"}],
        "model": "simulated/m",
        "settings": {"max_tokens": max_tokens, "tokens_per_second": 0},
    }


async def run_tasks(client: Client, n: int) -> list[str]:
    acks = [await client.call("execute", adhoc(i)) for i in range(n)]
    for ack in acks:
        await client.wait_done(ack["task_id"])
    return [ack["task_id"] for ack in acks]


async def test_tasks_tokens_chunks_and_sockets_are_counted(server: Server) -> None:
    before = await scrape(server)
    assert value(before, "promptrelay_sockets_connected") == 0
    client = await server.client(await server.new_key())
    task_ids = await run_tasks(client, 3)
    after = await scrape(server)
    for task_id in task_ids:
        assert_intact(client, task_id)
    assert value(after, "promptrelay_sockets_connected") == 1
    assert value(after, "promptrelay_tasks_total", status="completed", provider="simulated") == 3
    assert value(after, "promptrelay_tokens_relayed_total", provider="simulated") == 30
    received = sum(len(client.chunks[t]) for t in task_ids)
    assert value(after, "promptrelay_chunks_emitted_total") == received
    assert value(after, "promptrelay_chunks_published_total") == received
    assert value(after, "promptrelay_task_latency_seconds_count", provider="simulated") == 3
    assert value(after, "promptrelay_time_to_first_token_seconds_count", provider="simulated") == 3
    assert value(after, "promptrelay_pg_finalize_seconds_count") == 3
    assert value(after, "promptrelay_redis_publish_seconds_count") >= 1
    assert value(after, "promptrelay_pg_pool_connections", state="open") >= 1
    assert value(after, "process_resident_memory_bytes") > 0
    await client.sio.disconnect()
    for _ in range(50):
        if value(await scrape(server), "promptrelay_sockets_connected") == 0:
            break
        await asyncio.sleep(0.1)
    assert value(await scrape(server), "promptrelay_sockets_connected") == 0


async def test_postgres_statements_per_task_are_constant(server: Server) -> None:
    """create + finalize, whatever the number of chunks: not one statement per chunk."""
    client = await server.client(await server.new_key())
    per_task = []
    for max_tokens in (5, 400):
        before = value(await scrape(server), "promptrelay_pg_queries_total")
        acks = [await client.call("execute", adhoc(i, max_tokens)) for i in range(4)]
        for ack in acks:
            await client.wait_done(ack["task_id"])
            assert len(client.chunks[ack["task_id"]]) >= 1
        after = value(await scrape(server), "promptrelay_pg_queries_total")
        per_task.append((after - before) / 4)
    assert per_task == [2.0, 2.0]


@pytest_asyncio.fixture
async def oai_server(settings: Settings) -> AsyncIterator[Server]:
    async with FakeOpenAI() as fake:
        srv = await start_server(
            settings.model_copy(
                update={
                    "openai_api_key": SecretStr("test-key"),
                    "openai_base_url": fake.base_url,
                }
            )
        )
        try:
            yield srv
        finally:
            await stop_server(srv)


async def test_provider_errors_by_code(oai_server: Server) -> None:
    client = await oai_server.client(await oai_server.new_key())
    ack = await client.call(
        "execute",
        {"messages": [{"role": "user", "content": "hi"}], "model": "openai/fake:status=401"},
    )
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "failed" and done["error"]["code"] == "provider_error"
    samples = await scrape(oai_server)
    failures = "promptrelay_task_failures_total"
    assert value(samples, failures, provider="openai", code="provider_error", fault="provider") == 1
    assert value(samples, "promptrelay_tasks_total", status="failed", provider="openai") == 1


def test_quota_rejections_count_only_quota_codes() -> None:
    metrics = Metrics()
    for code in ("quota_exceeded", "rate_limited", "rate_limited", "not_found"):
        metrics.error_code(code)
    text = metrics.exposition().decode()
    assert 'promptrelay_quota_rejections_total{code="rate_limited"} 2.0' in text
    assert 'promptrelay_quota_rejections_total{code="quota_exceeded"} 1.0' in text
    assert "not_found" not in text


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.sockets_connected.inc()
    assert b"promptrelay_sockets_connected 0.0" in b.exposition()
