"""Reasoning on its own channel (docs/protocol.md "Reasoning") over real sockets, Postgres
and Redis, with the simulator: `task_reasoning` in the task's one sequence, never in the
answer's text, resumed with after_seq, replayed from history, counted apart in usage."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from engine.stream.coalescer import REASONING, CallRef, Chunk, Coalescer
from engine.stream.history import fold
from engine.stream.records import CHUNK, DONE, TOOL_CALL
from engine.stream.records import REASONING as REASONING_RECORD
from tests.conftest import Client, Server
from tests.provider_env import fetch, task_row


def _body(reasoning: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {"tokens_per_second": 0, "max_tokens": 6, **settings}
    if reasoning is not None:
        merged["reasoning"] = reasoning
    return {
        "messages": [{"role": "user", "content": "think, then answer"}],
        "model": "simulated/demo",
        "settings": merged,
    }


def _all_seqs(client: Client, task_id: str) -> list[int]:
    records = client.chunks[task_id] + client.reasoning[task_id] + client.tool_calls[task_id]
    return sorted(r["seq"] for r in records)


def _thought(client: Client, task_id: str) -> str:
    return "".join(r["text"] for r in sorted(client.reasoning[task_id], key=lambda r: r["seq"]))


async def test_reasoning_streams_apart_before_the_answer(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    client = await server.client(key)
    ack = await client.call("execute", _body({"effort": "medium"}))
    task_id = ack["task_id"]
    done = await client.wait_done(task_id)
    assert done["status"] == "completed"
    # four pieces of two words, then the answer: one sequence 1..last_seq without gaps
    assert len(client.reasoning[task_id]) >= 1
    assert _all_seqs(client, task_id) == list(range(1, done["last_seq"] + 1))
    order = [k for k in client.order[task_id] if k != "done"]
    assert order.index("chunk") > max(i for i, k in enumerate(order) if k == "reasoning")
    thought = _thought(client, task_id)
    assert len(thought.split()) == 8
    assert done["reasoning"] == thought
    # the answer's text holds no reasoning
    assert done["text"] == client.text(task_id)
    assert len(done["text"].split()) == 6
    assert thought not in done["text"]
    usage = done["usage"]
    assert usage["reasoning_tokens"] == 8
    assert usage["output_tokens"] == 6 + 8
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    row = await task_row(server, task_id)
    assert row["reasoning_text"] == thought and row["response_text"] == done["text"]
    assert row["reasoning_tokens"] == 8 and row["output_tokens"] == 14
    logs = await fetch(server, "SELECT * FROM ai_usage_logs WHERE task_id = $1", uuid.UUID(task_id))
    assert logs[0]["reasoning_tokens"] == 8 and logs[0]["output_tokens"] == 14
    auth = {"Authorization": f"Bearer {key}"}
    async with http.get(f"{server.url}/v1/tasks/{task_id}", headers=auth) as resp:
        view = await resp.json()
    assert view["reasoning"] == thought and view["usage"]["reasoning_tokens"] == 8
    async with http.get(f"{server.url}/v1/runs/{ack['run_id']}", headers=auth) as resp:
        run = await resp.json()
    assert run["usage"]["reasoning_tokens"] == 8
    assert run["tasks"][0]["reasoning"] == thought


async def test_effort_and_budget_set_how_much_it_reasons(server: Server) -> None:
    client = await server.client(await server.new_key())
    for reasoning, words in (({"effort": "low"}, 4), ({"effort": "high", "budget_tokens": 5}, 5)):
        ack = await client.call("execute", _body(reasoning))
        done = await client.wait_done(ack["task_id"])
        assert len(done["reasoning"].split()) == words
        assert done["usage"]["reasoning_tokens"] == words


async def test_no_reasoning_unless_asked(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", _body())
    done = await client.wait_done(ack["task_id"])
    assert client.reasoning[ack["task_id"]] == []
    assert done["reasoning"] is None
    assert done["usage"]["reasoning_tokens"] == 0
    row = await task_row(server, ack["task_id"])
    assert row["reasoning_text"] is None and row["reasoning_tokens"] == 0


async def test_resume_after_seq_in_the_middle_of_reasoning(server: Server) -> None:
    key = await server.new_key()
    first = await server.client(key)
    ack = await first.call("execute", _body({"effort": "high"}, tokens_per_second=200))
    task_id = ack["task_id"]
    done = await first.wait_done(task_id)
    pieces = sorted(first.reasoning[task_id], key=lambda r: r["seq"])
    assert len(pieces) >= 3
    middle = pieces[1]["seq"]
    # a second socket resumes after the second piece of reasoning: the rest, in order
    second = await server.client(key)
    await second.call("subscribe", {"task_id": task_id, "after_seq": middle})
    again = await second.wait_done(task_id)
    assert again["reasoning"] == done["reasoning"]
    assert _all_seqs(second, task_id) == list(range(middle + 1, done["last_seq"] + 1))
    rest = "".join(p["text"] for p in pieces if p["seq"] > middle)
    assert _thought(second, task_id) == rest
    assert second.text(task_id) == done["text"]
    # after_seq 0 replays everything, reasoning included
    third = await server.client(key)
    await third.call("subscribe", {"task_id": task_id, "after_seq": 0})
    await third.wait_done(task_id)
    assert _thought(third, task_id) == done["reasoning"]
    assert _all_seqs(third, task_id) == list(range(1, done["last_seq"] + 1))


async def test_reasoning_before_tool_calls(server: Server) -> None:
    client = await server.client(await server.new_key())
    body = _body({"effort": "low"}, simulate_tool_calls=1)
    body["tools"] = [{"name": "lookup", "parameters": {"type": "object"}}]
    ack = await client.call("execute", body)
    done = await client.wait_done(ack["task_id"])
    assert done["finish_reason"] == "tool_calls"
    assert len(done["reasoning"].split()) == 4
    assert _all_seqs(client, ack["task_id"]) == list(range(1, done["last_seq"] + 1))


def test_coalescer_keeps_reasoning_apart_and_in_order() -> None:
    co = Coalescer(0.0)
    co.open("t")
    call = CallRef(0, "c1", "f")
    co.append_call("t", REASONING, "Let me ")
    co.append_call("t", REASONING, "think.")
    co.append("t", "Answer")
    co.append("t", " here")
    co.append_call("t", REASONING, "More?")
    co.append_call("t", call, "{}")
    chunks = co.take()
    assert chunks == [
        Chunk("t", 1, "Let me think.", None, True),
        Chunk("t", 2, "Answer here"),
        Chunk("t", 3, "More?", None, True),
        Chunk("t", 4, "{}", call),
    ]
    co.published(chunks)
    co.append("t", "x")
    assert co.take() == [Chunk("t", 5, "x")]


def test_fold_keeps_text_and_reasoning_apart() -> None:
    records = [
        (REASONING_RECORD, {"task_id": "t", "seq": 1, "text": "hmm "}),
        (REASONING_RECORD, {"task_id": "t", "seq": 1, "text": "hmm "}),  # duplicate
        (CHUNK, {"task_id": "t", "seq": 2, "text": "yes"}),
        (TOOL_CALL, {"task_id": "t", "seq": 3}),
        (REASONING_RECORD, {"task_id": "t", "seq": 4, "text": "ok"}),
        (DONE, {"task_id": "t"}),
    ]
    partial = fold(records)
    assert partial.text == "yes" and partial.reasoning == "hmm ok"
    assert partial.last_seq == 4 and partial.ended
