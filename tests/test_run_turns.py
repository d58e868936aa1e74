"""A run holds one turn at a time: an execute in a run whose turn still runs is refused
`run_busy` (409, the running task's id in `details`), over Socket.IO and HTTP and for
executes racing each other; once the turn ends the next one is sent with it, and the run
keeps the turns in the order they were sent."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import pytest

from db import tasks as task_rows
from engine.errors import PromptrelayError
from promptrelay_client import errors as client_errors
from server.state import POOL
from tests.conftest import Server

SLOW = {"max_tokens": 200, "tokens_per_second": 20}
FAST = {"max_tokens": 5, "tokens_per_second": 0}


def turn(text: str, run_id: str | None = None, settings: dict[str, Any] = FAST) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": "simulated/turns",
        "messages": [{"role": "user", "content": text}],
        "settings": settings,
    }
    if run_id is not None:
        payload["run_id"] = run_id
    return payload


async def test_a_turn_sent_while_the_last_one_runs_is_refused(server: Server) -> None:
    key = await server.new_key()
    client = await server.client(key)
    first = await client.call("execute", turn("Q1", settings=SLOW))
    assert first["ok"], first
    run_id = first["run_id"]
    await client.wait_chunks(first["task_id"])

    second = await client.call("execute", turn("Q2", run_id))
    assert second == {
        "ok": False,
        "error": {
            "code": "run_busy",
            "message": "the run's previous turn is still running; send this turn once it has ended",
            "details": {"task_id": first["task_id"]},
        },
    }
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(server.url, headers=headers) as http:
        async with http.post("/v1/executions", json=turn("Q2", run_id)) as resp:
            assert resp.status == 409
            body = await resp.json()
            assert body["error"]["code"] == "run_busy"
            assert body["error"]["details"] == {"task_id": first["task_id"]}

        cancelled = await client.call("cancel", {"task_id": first["task_id"]})
        assert cancelled["ok"], cancelled
        await client.wait_done(first["task_id"])
        answer = client.done[first["task_id"]]["text"]

        second = await client.call("execute", turn("Q2", run_id))
        assert second["ok"], second
        await client.wait_done(second["task_id"])
        async with http.get(f"/v1/tasks/{second['task_id']}") as resp:
            sent = (await resp.json())["request"]["messages"]
        async with http.get(f"/v1/runs/{run_id}") as resp:
            run = await resp.json()
    assert [m["content"] for m in sent] == ["Q1", answer, "Q2"]
    assert [m["content"] for m in run["messages"][:3]] == ["Q1", answer, "Q2"]
    assert [m["role"] for m in run["messages"]] == ["user", "assistant", "user", "assistant"]


async def test_racing_turns_one_wins_and_the_run_keeps_the_order_sent(server: Server) -> None:
    key = await server.new_key()
    client = await server.client(key)
    first = await client.call("execute", turn("Q1"))
    assert first["ok"], first
    run_id = first["run_id"]
    await client.wait_done(first["task_id"])

    acks = await asyncio.gather(
        *(client.call("execute", turn(f"Q{n}", run_id, SLOW)) for n in range(2, 8))
    )
    won = [a for a in acks if a["ok"]]
    assert len(won) == 1, acks
    busy = [a["error"] for a in acks if not a["ok"]]
    assert {e["code"] for e in busy} == {"run_busy"}
    assert {e["details"]["task_id"] for e in busy} == {won[0]["task_id"]}
    await client.wait_done(won[0]["task_id"])
    last = await client.call("execute", turn("last", run_id))
    assert last["ok"], last
    await client.wait_done(last["task_id"])

    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(server.url, headers=headers) as http:
        async with http.get(f"/v1/runs/{run_id}") as resp:
            messages = (await resp.json())["messages"]
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert users[0] == "Q1" and users[-1] == "last" and len(users) == 3
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3


def _codes(cls: type[PromptrelayError]) -> set[str]:
    found = {cls.code} if cls.retryable else set()
    for sub in cls.__subclasses__():
        found |= _codes(sub)
    return found


def test_the_clients_retry_every_code_the_server_calls_retryable() -> None:
    retryable = _codes(PromptrelayError)
    assert "run_busy" in retryable
    assert retryable <= client_errors.RETRYABLE
    js = (Path(__file__).parent.parent / "clients/typescript/src/errors.js").read_text()
    line = next(x for x in js.splitlines() if x.startswith("const RETRYABLE"))
    assert retryable <= set(re.findall(r'"([a-z_]+)"', line))


async def test_a_turn_read_before_the_last_one_ended_is_not_created(server: Server) -> None:
    key = await server.new_key()
    client = await server.client(key)
    first = await client.call("execute", turn("Q1"))
    await client.wait_done(first["task_id"])
    pool = server.app[POOL]
    row = await pool.fetchrow(
        "SELECT user_id, task_count FROM ai_runs WHERE id = $1", UUID(first["run_id"])
    )
    stale = task_rows.NewTask(
        task_id=uuid4(),
        user_id=row["user_id"],
        provider="simulated",
        model="turns",
        request={},
        run_id=UUID(first["run_id"]),
        run_turns=row["task_count"] - 1,  # read while the first turn still ran
    )
    with pytest.raises(task_rows.TurnConflict):
        await task_rows.create_task(pool, stale)
    assert (
        await pool.fetchval("SELECT count(*) FROM ai_tasks WHERE task_id = $1", stale.task_id) == 0
    )
    fresh = replace(stale, run_turns=row["task_count"])
    await task_rows.create_task(pool, fresh)
    assert await task_rows.running_turn(pool, fresh.run_id or uuid4()) == fresh.task_id
