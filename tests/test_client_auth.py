"""The Python client when the server ends its connection for authentication (a JWT that
expires mid-stream, a key revoked mid-stream) or its transport refuses a payload: with a
token provider it reconnects with a fresh token and every task resumes after its last seq;
without one, everything pending settles with `unauthorized`, reported once. Real servers,
real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from pydantic import SecretStr

from engine.settings import Settings
from promptrelay_client import Chunk, Client, PromptrelayError
from tests.conftest import SMALL_LIMIT, Server, start_server, stop_server
from tests.test_auth import AUDIENCE, ISSUER, SECRET, claims, token

SETTLE_S = 5.0  # what "settles" means here: never a hang


def adhoc(max_tokens: int, tokens_per_second: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "a long answer"}],
        "model": "simulated/client-test",
        "settings": {"max_tokens": max_tokens, "tokens_per_second": tokens_per_second},
    }


@pytest_asyncio.fixture
async def srv(settings: Settings) -> AsyncIterator[Server]:
    """A server taking JWTs, re-checking sessions every 0.3 s."""
    node = await start_server(
        settings.model_copy(
            update={
                "jwt_secret": SecretStr(SECRET),
                "jwt_audience": AUDIENCE,
                "jwt_issuer": ISSUER,
                "auth_recheck_s": 0.3,
            }
        )
    )
    try:
        yield node
    finally:
        await stop_server(node)


def short_jwt(sub: str, lifetime_s: int = 3) -> str:
    return token(claims(sub=sub, exp=int(time.time()) + lifetime_s))


async def collect(task: Any) -> list[Chunk]:
    return [chunk async for chunk in task]


async def test_expired_jwt_with_a_provider_resumes_every_task(srv: Server) -> None:
    sub = claims()["sub"]
    minted: list[str] = []

    async def provider() -> str:
        minted.append(short_jwt(sub))
        return minted[-1]

    async with Client(srv.url, provider, reconnection_delay_max=0.3) as client:
        tasks = [client.execute(adhoc(160, 30)) for _ in range(2)]
        seen = await asyncio.wait_for(asyncio.gather(*(collect(t) for t in tasks)), 60)
        assert client.connects >= 2, "the stream ended before the token expired"
        assert len(minted) >= 2
        for task, chunks in zip(tasks, seen, strict=True):
            done = await task.done
            assert done["status"] == "completed"
            assert [c.seq for c in chunks] == list(range(1, done["last_seq"] + 1))
            assert "".join(c.text for c in chunks) == done["text"]


async def settles_unauthorized(client: Client, task: Any, errors: list[Any]) -> None:
    with pytest.raises(PromptrelayError) as caught:
        await asyncio.wait_for(task.done, 3 + SETTLE_S)
    assert caught.value.code == "unauthorized"
    later = client.execute(adhoc(5, 100))
    with pytest.raises(PromptrelayError) as again:
        await asyncio.wait_for(later.done, SETTLE_S)
    assert again.value.code == "unauthorized"
    assert len(errors) == 1 and errors[0].code == "unauthorized"


async def test_expired_jwt_without_a_provider_settles_unauthorized(srv: Server) -> None:
    errors: list[PromptrelayError] = []
    async with Client(srv.url, short_jwt(claims()["sub"]), on_auth_error=errors.append) as c:
        await settles_unauthorized(c, c.execute(adhoc(400, 30)), errors)


async def test_provider_giving_the_refused_token_settles_unauthorized(srv: Server) -> None:
    errors: list[PromptrelayError] = []
    same = short_jwt(claims()["sub"])
    async with Client(srv.url, lambda: same, on_auth_error=errors.append) as c:
        await settles_unauthorized(c, c.execute(adhoc(400, 30)), errors)


async def test_key_revoked_mid_stream_settles_unauthorized(
    srv: Server, http: aiohttp.ClientSession
) -> None:
    owner = await srv.new_key()
    auth = {"Authorization": f"Bearer {owner}"}
    async with http.post(f"{srv.url}/v1/keys", json={}, headers=auth) as resp:
        created = await resp.json()
    errors: list[PromptrelayError] = []
    async with Client(srv.url, created["key"], on_auth_error=errors.append) as client:
        task = client.execute(adhoc(400, 30))
        await task.started
        async with http.delete(f"{srv.url}/v1/keys/{created['id']}", headers=auth) as resp:
            assert resp.status == 204
        await settles_unauthorized(client, task, errors)


async def test_payload_past_the_transport_limit_is_payload_too_large(
    small_server: Server,
) -> None:
    big = "x" * (SMALL_LIMIT * 2 + 70 * 1024)
    async with Client(small_server.url, await small_server.new_key()) as client:
        task = client.execute(
            {"messages": [{"role": "user", "content": big}], "model": "simulated/x"}
        )
        with pytest.raises(PromptrelayError) as caught:
            await asyncio.wait_for(task.done, 30)
        assert caught.value.code == "payload_too_large"
        small = client.execute(adhoc(5, 100))  # the client goes on working
        assert (await asyncio.wait_for(small.done, 30))["status"] == "completed"


async def test_rate_limited_executes_are_retried_after_retry_after_ms(settings: Settings) -> None:
    """A socket allowed 2 events a second sends 5 executes at once: the refused ones are
    sent again after the server's retry_after_ms, and all run (each once)."""
    node = await start_server(settings.model_copy(update={"max_events_per_second": 2.0}))
    try:
        async with Client(node.url, await node.new_key()) as client:
            tasks = [client.execute(adhoc(5, 100)) for _ in range(5)]
            done = await asyncio.wait_for(asyncio.gather(*(t.done for t in tasks)), 60)
            assert {d["status"] for d in done} == {"completed"}
            assert len({d["task_id"] for d in done}) == 5
            assert client.stats["rate_limited"] > 0, "the server never said rate_limited"
        async with Client(node.url, await node.new_key(), rate_limit_retries=0) as client:
            tasks = [client.execute(adhoc(5, 100)) for _ in range(5)]
            results = await asyncio.gather(*(t.done for t in tasks), return_exceptions=True)
            refused = [r for r in results if isinstance(r, PromptrelayError)]
            assert refused and {r.code for r in refused} == {"rate_limited"}
            assert all(isinstance((r.details or {}).get("retry_after_ms"), int) for r in refused)
    finally:
        await stop_server(node)


TOOLS = [
    {"name": "weather", "parameters": {"type": "object", "properties": {"city": {}}}},
    {"name": "time", "parameters": {"type": "object"}},
]


async def test_tool_calls_stream_in_the_tasks_sequence_and_results_continue(
    server: Server,
) -> None:
    """task_tool_call pieces share the chunks' seq: the client keeps them (no gap, no
    resubscribe), gives each call's argument text, and tool_result continues the run."""
    async with Client(server.url, await server.new_key()) as client:
        task = client.execute(
            {
                "messages": [{"role": "user", "content": "weather and time?"}],
                "model": "simulated/demo",
                "settings": {"tokens_per_second": 50, "max_tokens": 5, "simulate_tool_calls": 2},
                "tools": TOOLS,
            }
        )
        done = await asyncio.wait_for(task.done, 30)
        assert done["finish_reason"] == "tool_calls"
        assert task.anomalies == [] and client.stats["gaps"] == 0
        assert task.last_seq == done["last_seq"]
        calls = {c["id"]: c for c in done["tool_calls"]}
        assert list(task.tool_calls) == list(calls)
        for call_id, stream in task.tool_calls.items():
            assert stream.name == calls[call_id]["name"]
            assert json.loads(stream.arguments) == calls[call_id]["arguments"]
        acks = [await client.tool_result(done["task_id"], cid, "sunny") for cid in calls]
        assert acks[-1]["pending"] == [] and acks[-1]["next_task_id"] == done["next_task_id"]
        with pytest.raises(PromptrelayError) as again:
            await client.tool_result(done["task_id"], next(iter(calls)), "twice")
        assert again.value.code == "invalid_request"
        after = client.subscribe(done["next_task_id"])
        final = await asyncio.wait_for(after.done, 30)
        assert final["status"] == "completed" and final["text"] == after.text
