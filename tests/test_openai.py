"""The openai/ adapter through the official SDK, against a local server speaking OpenAI's
streaming wire format, end to end through the Socket.IO gateway."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest_asyncio
from pydantic import SecretStr

from engine.settings import Settings
from tests.conftest import Server, assert_intact, start_server, stop_server
from tests.fakes.openai_server import FakeOpenAI


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest_asyncio.fixture
async def oai_server(settings: Settings, fake: FakeOpenAI) -> AsyncIterator[Server]:
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


def body(model: str, text: str = "say some words please") -> dict[str, object]:
    return {
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
        "model": f"openai/{model}",
    }


async def task_row(server: Server, task_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM ai_tasks WHERE task_id = $1", uuid.UUID(task_id))
    finally:
        await conn.close()
    assert row is not None
    return row


async def test_openai_stream_usage_and_cost(oai_server: Server, fake: FakeOpenAI) -> None:
    client = await oai_server.client(await oai_server.new_key())
    ack = await client.call("execute", {**body("gpt-4o-mini"), "settings": {"temperature": 0.2}})
    done = await client.wait_done(ack["task_id"])
    assert_intact(client, ack["task_id"])
    assert done["status"] == "completed" and done["text"] == "".join(f"tok{i} " for i in range(8))
    assert done["provider"] == "openai" and done["model"] == "gpt-4o-mini"
    # The fake counts 6 prompt words; usage is the provider's own report.
    assert done["usage"] == {
        "input_tokens": 6,
        "output_tokens": 8,
        "total_tokens": 14,
        "reasoning_tokens": 0,
    }
    # gpt-4o-mini: $0.15 / M input, $0.60 / M output (genai-prices)
    assert Decimal(done["cost_usd"]) == Decimal("0.0000009") + Decimal("0.0000048")
    sent = fake.requests[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["temperature"] == 0.2 and sent["model"] == "gpt-4o-mini"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    row = await task_row(oai_server, ack["task_id"])
    assert row["usage_source"] == "provider" and row["cost_usd"] == Decimal(done["cost_usd"])


async def test_missing_usage_is_estimated_not_zero(oai_server: Server) -> None:
    client = await oai_server.client(await oai_server.new_key())
    ack = await client.call("execute", body("gpt-4o-mini:usage=0:tokens=20"))
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "completed"
    assert done["usage"]["output_tokens"] > 0 and done["usage"]["input_tokens"] > 0
    row = await task_row(oai_server, ack["task_id"])
    assert row["usage_source"] == "estimated"


async def test_cut_stream_fails_with_partial_text(oai_server: Server) -> None:
    client = await oai_server.client(await oai_server.new_key())
    ack = await client.call("execute", body("gpt-4o-mini:tokens=10:cut_after=3"))
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "failed" and done["finish_reason"] == "error"
    assert done["error"]["code"] == "provider_unavailable" and done["error"]["retryable"]
    assert done["text"] == "tok0 tok1 tok2 "
    assert_intact(client, ack["task_id"])
    row = await task_row(oai_server, ack["task_id"])
    assert row["status"] == "failed" and row["response_text"] == "tok0 tok1 tok2 "
    assert row["usage_source"] == "estimated" and row["output_tokens"] > 0


async def test_rejected_call_is_provider_error_without_secrets(
    settings: Settings, fake: FakeOpenAI
) -> None:
    srv = await start_server(
        settings.model_copy(
            update={
                "openai_api_key": SecretStr("bad-key"),
                "openai_base_url": fake.base_url,
            }
        )
    )
    try:
        client = await srv.client(await srv.new_key())
        ack = await client.call("execute", body("gpt-4o-mini"))
        done = await client.wait_done(ack["task_id"])
    finally:
        await stop_server(srv)
    assert done["status"] == "failed" and done["error"]["code"] == "provider_error"
    assert done["error"]["retryable"] is False
    assert "bad-key" not in str(done) and "Traceback" not in str(done)


async def test_cancel_closes_the_upstream_request(oai_server: Server, fake: FakeOpenAI) -> None:
    client = await oai_server.client(await oai_server.new_key())
    ack = await client.call("execute", body("gpt-4o-mini:tokens=500:delay_ms=50"))
    task_id = ack["task_id"]
    await client.wait_chunks(task_id)
    result = await client.call("cancel", {"task_id": task_id})
    assert result["status"] == "cancelled"
    assert await fake.wait_for_disconnect(5.0), "the fake server never saw the client go away"
    done = await client.wait_done(task_id)
    assert done["status"] == "cancelled" and done["usage"]["output_tokens"] > 0
    assert done["text"].startswith("tok0 ")


async def test_idle_timeout_fails_the_task(settings: Settings, fake: FakeOpenAI) -> None:
    srv = await start_server(
        settings.model_copy(
            update={
                "openai_api_key": SecretStr("k"),
                "openai_base_url": fake.base_url,
                "first_token_timeout_s": 0.5,
            }
        )
    )
    try:
        client = await srv.client(await srv.new_key())
        ack = await client.call("execute", body("gpt-4o-mini:tokens=3:delay_ms=3000"))
        done = await client.wait_done(ack["task_id"])
    finally:
        await stop_server(srv)
    assert done["status"] == "failed" and done["error"]["code"] == "timeout"
