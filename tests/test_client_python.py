"""The Python client (promptrelay_client) against two real nodes behind a load balancer
that the tests cut, hold and switch: chunks before the ack, a dropped transport, a lost
execute ack, a draining node, cancel, error acks, following another client's task, and
the record of what the server sent out of order (repeats, gaps, chunks only task_done
had, events after task_done)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from engine.settings import Settings
from promptrelay_client import Anomaly, Chunk, Client, PromptrelayError, Task
from server.realtime.sessions import SESSIONS
from tests.client_harness import Harness, harness
from tests.conftest import start_server, stop_server
from tests.nodes import until


def adhoc(content: str, max_tokens: int, tokens_per_second: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": content}],
        "model": "simulated/client-test",
        "settings": {"max_tokens": max_tokens, "tokens_per_second": tokens_per_second},
    }


@pytest_asyncio.fixture
async def h(settings: Settings) -> AsyncIterator[Harness]:
    async with harness(settings) as h:
        yield h


@pytest_asyncio.fixture
async def client(h: Harness) -> AsyncIterator[Client]:
    async with Client(h.url, h.token, reconnection_delay_max=0.3) as c:
        yield c


async def task_row(h: Harness, task_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {h.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{h.a.url}/v1/tasks/{task_id}", headers=headers) as resp,
    ):
        assert resp.status == 200
        row: dict[str, Any] = await resp.json()
        return row


async def collect(task: Task, when: int = -1, then: Any = None) -> list[Chunk]:
    seen: list[Chunk] = []
    async for chunk in task:
        seen.append(chunk)
        if len(seen) == when:
            await then()
    return seen


async def assert_intact(h: Harness, task: Task, seen: list[Chunk]) -> dict[str, Any]:
    """seq 1..n, and the chunks add up to the server's final text."""
    done = await task.done
    assert [c.seq for c in seen] == list(range(1, done["last_seq"] + 1))
    assert "".join(c.text for c in seen) == done["text"] == task.text
    row = await task_row(h, done["task_id"])
    assert row["text"] == done["text"] and row["last_seq"] == done["last_seq"]
    return done


async def test_chunks_before_the_ack_are_kept(h: Harness, client: Client) -> None:
    h.ack_delay["s"] = 0.6
    task = client.execute(adhoc("early birds", 40, 60))
    seen = await collect(task)
    assert client.stats["early"] > 0, "no chunk came before the ack"
    assert (await assert_intact(h, task, seen))["status"] == "completed"


async def test_transport_dropped_mid_stream_and_restored(h: Harness, client: Client) -> None:
    async def cut() -> None:
        h.drop(hold_s=0.7)

    task = client.execute(adhoc("keep going", 90, 40))
    seen = await collect(task, 3, cut)
    assert client.connects > 1 and client.stats["resubscribes"] > 0
    await assert_intact(h, task, seen)


async def test_lost_execute_ack_is_retried_and_runs_once(h: Harness, client: Client) -> None:
    h.ack_delay["s"] = 0.8
    task = client.execute(adhoc("retried", 20, 0))
    await until(lambda: client.stats["early"] > 0, what="chunks before the ack")
    h.drop(hold_s=0.3)  # before the late ack
    await task.started
    h.ack_delay["s"] = 0
    assert client.stats["execute_retries"] > 0
    done = await task.done
    again = client.execute({**adhoc("retried", 20, 0), "request_id": task.request_id})
    assert (await again.started)["task_id"] == done["task_id"]  # the same task: ran once


async def test_draining_node_reconnect_to_the_second(h: Harness, client: Client) -> None:
    async def drain() -> None:
        h.drain_a()

    task = client.execute(adhoc("move over", 90, 40))
    seen = await collect(task, 3, drain)
    done = await assert_intact(h, task, seen)
    assert done["status"] == "completed"
    assert client.connects > 1
    assert h.b.app[SESSIONS].by_sid, "the client did not reconnect to node B"
    following = client.execute(adhoc("on node B", 10, 0))
    await assert_intact(h, following, await collect(following))


async def test_cancel(h: Harness, client: Client) -> None:
    task = client.execute(adhoc("a long story", 400, 20))

    async def stop() -> None:
        assert await task.cancel() == "cancelled"

    seen = await collect(task, 2, stop)
    done = await assert_intact(h, task, seen)
    assert done["status"] == "cancelled" and done["text"]


async def test_error_acks_are_typed(client: Client) -> None:
    bad = client.execute(model="nope")
    with pytest.raises(PromptrelayError) as caught:
        await collect(bad)
    assert caught.value.code == "invalid_request" and not caught.value.retryable
    missing = client.execute(builtin="translate", variables={})
    with pytest.raises(PromptrelayError) as caught:
        await missing.done
    assert caught.value.code == "missing_variables"
    assert "text" in (caught.value.details or {})["missing"]


async def test_refused_token(h: Harness) -> None:
    with pytest.raises(PromptrelayError) as caught:
        async with Client(h.url, "ps_not_a_key"):
            pass
    assert caught.value.code == "unauthorized"


async def test_subscribe_follows_another_clients_task(h: Harness, client: Client) -> None:
    async with Client(h.url, h.token) as other:
        started = other.execute(adhoc("elsewhere", 30, 60))
        ack = await started.started
        followed = client.subscribe(ack["task_id"])
        seen = await collect(followed)
        done = await assert_intact(h, followed, seen)
        assert done["text"] == (await started.done)["text"]


async def test_runs_changed_only_for_a_client_that_asked(h: Harness, client: Client) -> None:
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    others: list[dict[str, Any]] = []
    client.sio.on("runs_changed", others.append)  # `client` did not ask
    async with Client(h.url, h.token, on_runs_changed=heard.put_nowait):
        done = await client.execute(adhoc("a new conversation", 5, 200)).done
        change = await asyncio.wait_for(heard.get(), 10)
        while change["run_id"] != done["run_id"]:
            change = await asyncio.wait_for(heard.get(), 10)
        assert change["change"] == "created"
        assert change["run"]["title"] == "a new conversation"
    await asyncio.sleep(0.3)  # what the room sent would have reached `client` by now
    assert others == []


async def resubscribe_raw(client: Client, task: Task, after_seq: int) -> None:
    """The task's `subscribe` sent on the client's own socket, behind the client's back:
    the server replaces the socket's subscription and sends every chunk after `after_seq`
    (the protocol's contract), so it sends chunks the client holds, or skips some."""
    ack = await client.sio.call("subscribe", {"task_id": task.task_id, "after_seq": after_seq})
    assert ack["ok"], ack


async def test_repeats_the_server_sent_are_on_record(h: Harness, client: Client) -> None:
    task = client.execute(adhoc("say it twice", 60, 40))
    seen = await collect(task, 3, lambda: resubscribe_raw(client, task, 0))
    done = await assert_intact(h, task, seen)  # repaired: each chunk once, in order
    assert {a.kind for a in task.anomalies} == {"repeat"}
    assert {1, 2, 3} <= {a.seq for a in task.anomalies}
    assert all(a.seq <= a.held for a in task.anomalies)
    assert client.stats["gaps"] == 0

    # After task_done: the whole stream and task_done again, each on record.
    await resubscribe_raw(client, task, 0)

    def late() -> list[int]:
        return sorted(a.seq for a in task.anomalies if a.kind == "after_done")

    await until(lambda: len(late()) == done["last_seq"] + 1, what="events after task_done")
    assert late() == sorted([*range(1, done["last_seq"] + 1), done["last_seq"]])
    assert [c.seq for c in task.chunks] == [c.seq for c in seen]  # none of them delivered


async def test_a_gap_the_server_left_is_on_record(h: Harness, client: Client) -> None:
    # 25 tokens/s: one token a chunk, so seq runs well past the skip below
    task = client.execute(adhoc("skip ahead", 100, 25))
    skipped_to: list[int] = []

    async def skip() -> None:
        skipped_to.append(task.last_seq + 20)
        await resubscribe_raw(client, task, skipped_to[0])

    seen = await collect(task, 3, skip)
    await assert_intact(h, task, seen)  # the client asked again from what it held
    first = task.anomalies[0]
    assert first == Anomaly("gap", skipped_to[0] + 1, first.held)
    assert first.held < skipped_to[0]
    assert {a.kind for a in task.anomalies} <= {"gap", "repeat"}
    assert client.stats["gaps"] >= 1 and client.stats["resubscribes"] >= 1


async def test_chunks_only_task_done_had_are_on_record(settings: Settings) -> None:
    """Following a task after its history expired: no chunk comes, task_done has the
    text; the client hands it on as one chunk and records what never came."""
    node = await start_server(settings.model_copy(update={"history_ttl_s": 1}))
    try:
        async with Client(node.url, await node.new_key()) as c:
            done = await c.execute(adhoc("gone by", 8, 0)).done
            await asyncio.sleep(2.5)  # past the history's TTL of 1 s
            late = c.subscribe(done["task_id"])
            seen = await collect(late)
            assert seen == [Chunk(done["last_seq"], done["text"])]
            assert late.anomalies == [Anomaly("missing", done["last_seq"], 0)]
    finally:
        await stop_server(node)


async def test_reasoning_apart_from_the_text_across_a_dropped_transport(
    h: Harness, client: Client
) -> None:
    body = adhoc("think aloud", 10, 20)
    body["settings"]["reasoning"] = {"effort": "high"}
    pieces: list[Chunk] = []

    def on_reasoning(piece: Chunk) -> None:
        pieces.append(piece)
        if len(pieces) == 2:  # in the middle of the reasoning
            h.drop(hold_s=0.5)

    task = client.execute(body)
    task.on_reasoning = on_reasoning
    seen = await collect(task)
    done = await task.done
    assert client.connects > 1 and client.stats["resubscribes"] > 0
    assert len(done["reasoning"].split()) == 16
    assert task.reasoning == done["reasoning"] == "".join(p.text for p in pieces)
    assert task.reasoning_chunks == pieces
    # one sequence: reasoning first, then the text; each seq once, nothing in between lost
    assert max(p.seq for p in pieces) < min(c.seq for c in seen)
    seqs = sorted([c.seq for c in seen] + [p.seq for p in pieces])
    assert seqs == list(range(1, done["last_seq"] + 1))
    assert "".join(c.text for c in seen) == done["text"] == task.text
