"""The typed protocol: what real clients receive matches the models of engine.protocol.responses (no
extra keys, no missing ones), /v1/protocol.json serves their schema, and the committed
TypeScript definitions are what the generator makes of it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import socketio
from pydantic import BaseModel

from engine.protocol import responses as events
from server.protocol.contract import protocol_schema
from server.protocol.typescript import TS_PATH, generate, ts_type
from tests.conftest import Server

SLOW = {"max_tokens": 200, "tokens_per_second": 20}
FAST = {"max_tokens": 12, "tokens_per_second": 0}


def adhoc(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "Hi"}],
        "model": "simulated/t",
        "settings": settings,
    }


def check(model: type[BaseModel], payload: Any) -> None:
    """Validate strictly: the model forbids keys it does not declare."""
    model.model_validate(payload)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def test_socket_payloads_match_their_models(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", adhoc(FAST))
    check(events.ExecuteAck, ack)
    done = await client.wait_done(ack["task_id"])
    check(events.TaskDone, done)
    for chunk in client.chunks[ack["task_id"]]:
        check(events.TaskChunk, chunk)
    check(events.SubscribeAck, await client.call("subscribe", {"task_id": ack["task_id"]}))
    check(events.UnsubscribeAck, await client.call("unsubscribe", {"task_id": ack["task_id"]}))

    slow = await client.call("execute", adhoc(SLOW))
    check(events.CancelAck, await client.call("cancel", {"task_id": slow["task_id"]}))
    cancelled = await client.wait_done(slow["task_id"])
    check(events.TaskDone, cancelled)
    assert cancelled["status"] == "cancelled"

    for bad in (
        {"model": "nope"},
        {"builtin": "no-such-builtin"},
        {"builtin": "translate", "variables": {}},
    ):
        error = await client.call("execute", bad)
        check(events.ErrorAck, error)


async def test_http_bodies_match_their_models(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    headers = {"Authorization": f"Bearer {key}"}
    async with http.post(server.url + "/v1/executions", json=adhoc(FAST), headers=headers) as resp:
        accepted = await resp.json()
    check(events.ExecutionAccepted, accepted)
    client = await server.client(key)
    await client.call("subscribe", {"task_id": accepted["task_id"]})
    await client.wait_done(accepted["task_id"])
    expected = {
        f"/v1/tasks/{accepted['task_id']}": events.TaskView,
        f"/v1/tasks/{accepted['task_id']}/events": events.TaskEventList,
        f"/v1/runs/{accepted['run_id']}": events.RunView,
        "/healthz": events.Health,
        "/readyz": events.Readiness,
    }
    for path, model in expected.items():
        async with http.get(server.url + path, headers=headers) as resp:
            assert resp.status == 200, path
            check(model, await resp.json())
    async with http.post(
        server.url + f"/v1/tasks/{accepted['task_id']}/cancel", headers=headers
    ) as resp:
        check(events.CancelResult, await resp.json())
    async with http.get(server.url + f"/v1/tasks/{uuid.uuid4()}", headers=headers) as resp:
        assert resp.status == 404
        check(events.HttpError, await resp.json())


async def test_refused_connection_data_matches_its_model(server: Server) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    seen: list[Any] = []
    sio.on("connect_error", lambda data: seen.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            server.url, auth={"token": "ps_wrong"}, transports=["websocket"], wait_timeout=10
        )
    assert len(seen) == 1
    check(events.ConnectError, seen[0])


async def test_protocol_json_is_the_models_schema(
    server: Server, http: aiohttp.ClientSession
) -> None:
    async with http.get(server.url + "/v1/protocol.json") as resp:
        assert resp.status == 200
        served = await resp.json()
    assert served == protocol_schema()
    for name in (
        "ExecuteRequest",
        "ExecuteAck",
        "ErrorAck",
        "TaskChunk",
        "TaskDone",
        "SubscribeAck",
        "CancelAck",
        "TaskView",
        "RunView",
        "HttpError",
    ):
        assert name in served["$defs"], name
    assert set(served["x-client-events"]) == {
        "execute",
        "subscribe",
        "unsubscribe",
        "cancel",
        "tool_result",
    }
    assert set(served["x-server-events"]) == {
        "task_chunk",
        "task_tool_call",
        "task_reasoning",
        "task_done",
        "server_draining",
        "session_ended",
        "runs_changed",
    }
    for route in (
        "POST /v1/executions",
        "GET /v1/runs",
        "PATCH /v1/runs/{id}",
        "DELETE /v1/runs/{id}",
        "GET /v1/tasks",
        "GET /v1/prompts/{id}/stats",
    ):
        assert route in served["x-http"], route


def test_committed_typescript_matches_the_models() -> None:
    assert TS_PATH.exists(), "run: python -m server.protocol.typescript"
    assert TS_PATH.read_text() == generate(), (
        "clients/typescript/protocol.d.ts drifted from engine/protocol/responses.py; "
        "run: python -m server.protocol.typescript"
    )


def test_typescript_reflects_a_changed_model() -> None:
    schema = protocol_schema()
    schema["$defs"]["TaskChunk"]["properties"]["extra"] = {"type": "string"}
    assert generate(schema) != generate()
    assert "  extra?: string;" in generate(schema)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"type": "integer"}, "number"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "string | null"),
        ({"enum": ["a", "b"]}, '"a" | "b"'),
        ({"const": True}, "true"),
        ({"type": "array", "items": {"$ref": "#/$defs/Message"}}, "Array<Message>"),
        (
            {"type": "object", "additionalProperties": {"type": "boolean"}},
            "Record<string, boolean>",
        ),
        ({"type": "object"}, "Record<string, unknown>"),
        ({}, "unknown"),
    ],
)
def test_ts_type_of_schema_nodes(node: dict[str, Any], expected: str) -> None:
    assert ts_type(node) == expected
