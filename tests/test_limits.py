"""Per-request size limits: messages, characters per message, variables; each refused with
`invalid_request` and a stable `details.limit`, before any task row is written."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from engine.settings import Settings
from tests.conftest import start_server, stop_server


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "simulated/l",
        "settings": {"max_tokens": 1, "tokens_per_second": 0},
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


@pytest.mark.parametrize(
    ("payload", "limit", "field"),
    [
        (body(messages=[{"role": "user", "content": "m"}] * 4), "messages", "messages"),
        (
            body(messages=[{"role": "user", "content": "x" * 101}]),
            "message_chars",
            "messages.0.content",
        ),
        (body(variables={f"v{i}": i for i in range(4)}), "variables", "variables"),
    ],
)
async def test_request_limits(
    settings: Settings, payload: dict[str, Any], limit: str, field: str
) -> None:
    srv = await start_server(
        settings.model_copy(
            update={"max_messages": 3, "max_message_chars": 100, "max_variables": 3}
        )
    )
    try:
        client = await srv.client(await srv.new_key())
        ack = await client.call("execute", payload)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
        details = ack["error"]["details"]
        assert details["limit"] == limit and details["errors"][0]["field"] == field, ack
        within = await client.call("execute", body())
        assert within["ok"], within  # within limits: fine
        conn = await asyncpg.connect(srv.settings.database_url)
        try:
            tasks = await conn.fetch("SELECT task_id, status FROM ai_tasks")
            assert [str(t["task_id"]) for t in tasks] == [within["task_id"]], tasks
        finally:
            await conn.close()
    finally:
        await stop_server(srv)
