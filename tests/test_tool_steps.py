"""Tool calling end to end over real sockets, Postgres and Redis (docs/tools.md): calls
streamed as task_tool_call events in the chunks' sequence, results by socket and HTTP, the
continuation, resume, timeout, max_steps and every bad input."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from engine.settings import Settings
from tests.conftest import Client, Server, start_server, stop_server
from tests.nodes import until
from tests.provider_env import fakes, fetch, provider_server

TOOLS = [
    {
        "name": "weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"name": "time", "parameters": {"type": "object"}},
]


def _sim(**extra: Any) -> dict[str, Any]:
    body = {
        "messages": [{"role": "user", "content": "weather and time?"}],
        "model": "simulated/demo",
        "settings": {"tokens_per_second": 0, "max_tokens": 5, "simulate_tool_calls": 2},
        "tools": TOOLS,
    }
    body.update(extra)
    return body


def _arguments(client: Client, task_id: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for piece in client.tool_calls[task_id]:
        out[piece["call_id"]] = out.get(piece["call_id"], "") + piece["arguments_delta"]
    return out


def _seqs(client: Client, task_id: str) -> list[int]:
    return sorted(e["seq"] for e in client.chunks[task_id] + client.tool_calls[task_id])


async def _ask(client: Client, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ack = await client.call("execute", body)
    return ack["task_id"], await client.wait_done(ack["task_id"])


async def test_two_steps_over_sockets_and_http(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    client = await server.client(key)
    task_id, done = await _ask(client, _sim())
    assert done["status"] == "completed" and done["finish_reason"] == "tool_calls"
    calls = done["tool_calls"]
    assert [c["name"] for c in calls] == ["weather", "time"]
    # the pieces streamed add up to the finished calls, numbered like chunks (1..last_seq)
    streamed = _arguments(client, task_id)
    assert {i: json.loads(t) for i, t in streamed.items()} == {
        c["id"]: c["arguments"] for c in calls
    }
    assert _seqs(client, task_id) == list(range(1, done["last_seq"] + 1))
    next_id = done["next_task_id"]
    sub = await client.call("subscribe", {"task_id": next_id, "after_seq": 0})
    assert sub["status"] == "running"
    ack = await client.call(
        "tool_result", {"task_id": task_id, "call_id": calls[0]["id"], "output": "sunny"}
    )
    assert ack == {
        "ok": True,
        "task_id": task_id,
        "call_id": calls[0]["id"],
        "next_task_id": next_id,
        "pending": [calls[1]["id"]],
    }
    async with http.post(
        f"{server.url}/v1/tasks/{task_id}/tool_results",
        json={"call_id": calls[1]["id"], "output": "noon"},
        headers={"Authorization": f"Bearer {key}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["pending"] == []
    final = await client.wait_done(next_id)
    assert final["status"] == "completed" and final["finish_reason"] == "stop"
    assert final["text"] == client.text(next_id) and final["text"]
    assert "tool_calls" not in final
    run = await fetch(server, "SELECT messages FROM ai_runs WHERE id = $1", done["run_id"])
    messages = run[0]["messages"]
    messages = json.loads(messages) if isinstance(messages, str) else messages
    roles = [(m["role"], m.get("tool_call_id")) for m in messages]
    assert roles == [
        ("user", None),
        ("assistant", None),
        ("tool", calls[0]["id"]),
        ("tool", calls[1]["id"]),
        ("assistant", None),
    ]
    assert messages[1]["tool_calls"][0]["name"] == "weather"
    rows = await fetch(
        server, "SELECT parent_task_id, step FROM ai_tasks WHERE task_id = $1", next_id
    )
    assert str(rows[0]["parent_task_id"]) == task_id and rows[0]["step"] == 2
    async with http.get(
        f"{server.url}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        view = await resp.json()
    assert view["tool_results"] == {calls[0]["id"]: "sunny", calls[1]["id"]: "noon"}
    assert view["next_task_id"] == next_id


async def test_resume_after_seq_over_tool_call_events(server: Server) -> None:
    key = await server.new_key()
    first = await server.client(key)
    task_id, done = await _ask(
        first, _sim(settings={"tokens_per_second": 0, "simulate_tool_calls": 3})
    )
    assert done["last_seq"] >= 3
    later = await server.client(key)
    await later.call("subscribe", {"task_id": task_id, "after_seq": 2})
    await later.wait_done(task_id)
    seqs = [e["seq"] for e in later.tool_calls[task_id]]
    assert seqs == list(range(3, done["last_seq"] + 1))
    assert later.tool_calls[task_id] == [e for e in first.tool_calls[task_id] if e["seq"] > 2]


async def test_result_timeout(settings: Settings) -> None:
    srv = await start_server(settings.model_copy(update={"tool_result_timeout_s": 0.5}))
    try:
        client = await srv.client(await srv.new_key())
        task_id, done = await _ask(client, _sim())
        call = done["tool_calls"][0]["id"]
        await client.call("tool_result", {"task_id": task_id, "call_id": call, "output": "x"})
        await client.call("subscribe", {"task_id": done["next_task_id"]})
        final = await client.wait_done(done["next_task_id"])
        assert final["status"] == "failed" and final["error"]["code"] == "timeout"
        assert "1 tool call" in final["error"]["message"]
        late = await client.sio.call(
            "tool_result",
            {"task_id": task_id, "call_id": done["tool_calls"][1]["id"], "output": "late"},
        )
        assert late["error"]["code"] == "invalid_request"
        assert late["error"]["details"]["errors"][0]["field"] == "call_id"
    finally:
        await stop_server(srv)


async def test_max_steps(server: Server) -> None:
    client = await server.client(await server.new_key())
    _, done = await _ask(client, _sim(max_steps=1))
    assert done["status"] == "failed" and done["finish_reason"] == "tool_calls"
    assert (
        done["error"]["code"] == "invalid_request" and "max_steps (1)" in done["error"]["message"]
    )
    assert done["next_task_id"] is None and len(done["tool_calls"]) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tools": [{"name": "bad name", "parameters": {"type": "object"}}]}, "tools.0.name"),
        ({"tools": [{"name": "f", "parameters": {"type": "string"}}]}, "tools.0.parameters"),
        (
            {"tools": [{"name": "f", "parameters": {"type": "object", "properties": 3}}]},
            "tools.0.parameters",
        ),
        (
            {"tools": [{"name": "f", "parameters": {"type": "object", "$ref": "http://x/y"}}]},
            "tools.0.parameters",
        ),
        ({"tools": [{"name": f"f{i}"} for i in range(65)]}, "tools"),
        ({"tools": [{"name": "f"}, {"name": "f"}]}, "tools.1.name"),
        ({"tool_choice": {"name": "nope"}}, "tool_choice.name"),
        ({"tools": None, "tool_choice": "auto"}, "tool_choice"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
async def test_bad_tools_name_the_field(server: Server, change: dict[str, Any], field: str) -> None:
    client = await server.client(await server.new_key())
    ack = await client.sio.call("execute", _sim(**change))
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
    assert field in [e["field"] for e in ack["error"]["details"]["errors"]], ack


async def test_bad_results(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    client = await server.client(key)
    task_id, done = await _ask(client, _sim())
    call = done["tool_calls"][0]["id"]

    async def answer(c: Client, call_id: str, tid: str = task_id) -> dict[str, Any]:
        result: dict[str, Any] = await c.sio.call(
            "tool_result", {"task_id": tid, "call_id": call_id, "output": "o"}
        )
        return result

    unknown = await answer(client, "call_nope")
    assert unknown["error"]["code"] == "invalid_request"
    assert unknown["error"]["details"]["errors"][0]["field"] == "call_id"
    assert (await answer(client, call))["ok"] is True
    twice = await answer(client, call)
    assert twice["error"]["code"] == "invalid_request" and "already" in twice["error"]["message"]
    other = await server.client(await server.new_key())
    assert (await answer(other, done["tool_calls"][1]["id"]))["error"]["code"] == "not_found"
    async with http.post(
        f"{server.url}/v1/tasks/{task_id}/tool_results",
        json={"call_id": done["tool_calls"][1]["id"], "output": "o"},
        headers={"Authorization": f"Bearer {await server.new_key()}"},
    ) as resp:
        assert resp.status == 404
    # the other user's attempt left the call open for its owner
    assert (await answer(client, done["tool_calls"][1]["id"]))["pending"] == []


async def test_disconnect_mid_tool_call_then_resume(settings: Settings) -> None:
    async with fakes() as f, provider_server(settings, f, coalesce_ms=0) as srv:
        key = await srv.new_key()
        client = await srv.client(key)
        body = {
            "messages": [{"role": "user", "content": "weather?"}],
            "model": "openai/gpt-4o-mini:tokens=1:tools=2:delay_ms=150",
            "tools": TOOLS,
        }
        ack = await client.call("execute", body)
        task_id = ack["task_id"]
        await until(lambda: len(client.tool_calls[task_id]) >= 2)  # inside the first call
        seen = _seqs(client, task_id)
        await client.sio.disconnect()
        back = await srv.client(key)
        await back.call("subscribe", {"task_id": task_id, "after_seq": seen[-1]})
        done = await back.wait_done(task_id)
        pieces = client.tool_calls[task_id] + back.tool_calls[task_id]
        assert done["last_seq"] > seen[-1]  # the disconnect came before the calls ended
        assert sorted(set(_seqs(client, task_id) + _seqs(back, task_id))) == list(
            range(1, done["last_seq"] + 1)
        )
        assert min(_seqs(back, task_id)) == seen[-1] + 1
        joined: dict[str, str] = {}
        for p in sorted(pieces, key=lambda p: p["seq"]):
            joined[p["call_id"]] = joined.get(p["call_id"], "") + p["arguments_delta"]
        assert {k: json.loads(v) for k, v in joined.items()} == {
            c["id"]: c["arguments"] for c in done["tool_calls"]
        }
        assert done["finish_reason"] == "tool_calls" and len(done["tool_calls"]) == 2


async def test_a_run_waiting_for_tool_results_holds_its_turn(server: Server) -> None:
    """While a step's continuation waits for results, a new message in the run is refused
    run_busy (the tool conversation is still the run's turn); once it ends, it is taken."""
    client = await server.client(await server.new_key())
    task_id, done = await _ask(client, _sim())
    run_id, next_id = done["run_id"], done["next_task_id"]
    again = {
        "messages": [{"role": "user", "content": "never mind"}],
        "model": "simulated/demo",
        "run_id": run_id,
    }
    busy = await client.call("execute", again)
    assert not busy["ok"] and busy["error"]["code"] == "run_busy", busy
    for call in done["tool_calls"]:
        ack = await client.call(
            "tool_result", {"task_id": task_id, "call_id": call["id"], "output": "ok"}
        )
        assert ack["ok"], ack
    await client.call("subscribe", {"task_id": next_id, "after_seq": 0})
    assert (await client.wait_done(next_id))["status"] == "completed"
    turn = await client.call("execute", again)
    assert turn["ok"], turn
    assert (await client.wait_done(turn["task_id"]))["status"] == "completed"


async def test_a_conversation_the_client_keeps(settings: Settings) -> None:
    """`tool_steps: "client"`: the task ends with its calls, no continuation; the next execute
    carries the calls and results as messages, and the provider receives them in its format
    (here Anthropic's `tool_use` / `tool_result` blocks)."""
    async with fakes() as f, provider_server(settings, f) as srv:
        client = await srv.client(await srv.new_key())
        body = _sim(tool_steps="client")
        task_id, done = await _ask(client, body)
        assert done["finish_reason"] == "tool_calls" and done["next_task_id"] is None
        calls = done["tool_calls"]
        rows = await fetch(srv, "SELECT step FROM ai_tasks")
        assert [r["step"] for r in rows] == [1]  # nothing waits for results
        history = [
            *body["messages"],
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": c["id"], "name": c["name"], "arguments": json.dumps(c["arguments"])}
                    for c in calls
                ],
            },
            *(
                {"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": f"r{i}"}
                for i, c in enumerate(calls)
            ),
        ]
        follow = _sim(messages=history, model="anthropic/m~tokens=2", tool_steps="client")
        _, done2 = await _ask(client, follow)
        assert done2["status"] == "completed" and done2["text"] == "tok0 tok1 ", done2
        sent = f.anthropic.requests[-1]["messages"]
        assert [b["type"] for b in sent[1]["content"]] == ["tool_use", "tool_use"]
        assert [(b["tool_use_id"], b["content"]) for b in sent[2]["content"]] == [
            (calls[0]["id"], "r0"),
            (calls[1]["id"], "r1"),
        ]


async def test_tool_turns_in_messages_are_checked(server: Server) -> None:
    client = await server.client(await server.new_key())
    for message, says in [
        ({"role": "tool", "content": "r"}, "needs tool_call_id"),
        (
            {
                "role": "user",
                "content": "x",
                "tool_calls": [{"id": "a", "name": "f", "arguments": "{}"}],
            },
            "assistant messages only",
        ),
        ({"role": "user", "content": "x", "tool_call_id": "a"}, "tool messages only"),
    ]:
        named = "tool_call_id" in message or message["role"] == "tool"
        field = "messages.0.tool_call_id" if named else "messages.0"
        ack = await client.call("execute", _sim(messages=[message]))
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
        error = ack["error"]["details"]["errors"][0]
        assert error["field"] == field and says in error["message"], ack
