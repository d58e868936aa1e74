"""The stream contract over real Socket.IO clients, real Redis and real Postgres."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
from redis.asyncio.cluster import RedisCluster

from tests.conftest import Server, assert_intact


def adhoc(text: str = "Hello there", **settings: object) -> dict[str, object]:
    return {
        "messages": [{"role": "user", "content": text}],
        "model": "simulated/test",
        "settings": settings,
    }


async def test_execute_streams_chunks_then_done(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", adhoc(max_tokens=40, tokens_per_second=100))
    assert ack["ok"] is True and ack["status"] == "running"
    done = await client.wait_done(ack["task_id"])
    assert_intact(client, ack["task_id"])
    assert done["status"] == "completed" and done["finish_reason"] == "stop"
    assert len(done["text"].split()) == 40
    assert done["usage"] == {
        "input_tokens": 2,
        "output_tokens": 40,
        "total_tokens": 42,
        "reasoning_tokens": 0,
    }
    assert done["cost_usd"] == "0" and done["run_id"] == ack["run_id"]
    assert done["ttft_ms"] is not None and done["latency_ms"] >= done["ttft_ms"]
    assert len(client.chunks[ack["task_id"]]) > 1, "tokens should arrive over several chunks"


async def test_rows_record_the_task_and_run(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", adhoc("one two three", max_tokens=12, tokens_per_second=0))
    done = await client.wait_done(ack["task_id"])
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        task = await conn.fetchrow(
            "SELECT * FROM ai_tasks WHERE task_id = $1", uuid.UUID(ack["task_id"])
        )
        run = await conn.fetchrow("SELECT * FROM ai_runs WHERE id = $1", uuid.UUID(ack["run_id"]))
        usage_rows = await conn.fetchval(
            "SELECT count(*) FROM ai_usage_logs WHERE task_id = $1", uuid.UUID(ack["task_id"])
        )
        kinds = [
            r["kind"]
            for r in await conn.fetch(
                "SELECT kind FROM task_events WHERE task_id = $1 ORDER BY id",
                uuid.UUID(ack["task_id"]),
            )
        ]
    finally:
        await conn.close()
    assert task["status"] == "completed" and task["response_text"] == done["text"]
    assert task["input_tokens"] == 3 and task["output_tokens"] == 12
    assert task["usage_source"] == "provider" and task["last_seq"] == done["last_seq"]
    assert task["completed_at"] >= task["started_at"]
    assert run["task_count"] == 1 and run["total_tokens"] == 15
    assert '"one two three"' in run["messages"] and done["text"] in run["messages"]
    assert usage_rows == 1
    assert kinds == ["queued", "provider_call", "first_token", "finalized"]


async def test_resume_after_disconnect_has_no_gap(server: Server) -> None:
    key = await server.new_key()
    first = await server.client(key)
    ack = await first.call("execute", adhoc(max_tokens=60, tokens_per_second=100))
    task_id = ack["task_id"]
    await first.wait_chunks(task_id, 3)
    await first.sio.disconnect()
    seen = first.seqs(task_id)[-1]
    second = await server.client(key)
    sub = await second.call("subscribe", {"task_id": task_id, "after_seq": seen})
    assert sub["ok"] is True and sub["status"] == "running"
    done = await second.wait_done(task_id)
    seqs = second.seqs(task_id)
    assert seqs == list(range(seen + 1, done["last_seq"] + 1))
    assert (
        first.text(task_id)[: len("".join(c["text"] for c in first.chunks[task_id]))]
        + second.text(task_id)
        == done["text"]
    )


async def test_subscribe_to_ended_task_replays_history(server: Server) -> None:
    key = await server.new_key()
    client = await server.client(key)
    ack = await client.call("execute", adhoc(max_tokens=20, tokens_per_second=0))
    await client.wait_done(ack["task_id"])
    late = await server.client(key)
    sub = await late.call("subscribe", {"task_id": ack["task_id"], "after_seq": 0})
    last_seq = client.done[ack["task_id"]]["last_seq"]
    assert sub == {"ok": True, "status": "completed", "last_seq": last_seq}
    await late.wait_done(ack["task_id"])
    assert_intact(late, ack["task_id"])


async def test_subscribe_after_history_expired_still_gets_done(server: Server) -> None:
    key = await server.new_key()
    client = await server.client(key)
    ack = await client.call("execute", adhoc(max_tokens=5, tokens_per_second=0))
    await client.wait_done(ack["task_id"])
    redis = server.engine.redis
    await redis.delete(server.engine.keys.history(ack["task_id"]))
    late = await server.client(key)
    sub = await late.call("subscribe", {"task_id": ack["task_id"]})
    assert sub["ok"] and sub["status"] == "completed"
    done = await late.wait_done(ack["task_id"])
    assert done["text"] == client.done[ack["task_id"]]["text"]
    assert late.chunks[ack["task_id"]] == []


async def test_cancel_ends_task_cancelled_with_partial_usage(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", adhoc(max_tokens=1000, tokens_per_second=50))
    task_id = ack["task_id"]
    await client.wait_chunks(task_id)
    result = await client.call("cancel", {"task_id": task_id})
    assert result == {"ok": True, "status": "cancelled"}
    done = await client.wait_done(task_id)
    assert_intact(client, task_id)
    assert done["status"] == "cancelled" and done["finish_reason"] == "cancelled"
    assert 0 < done["usage"]["output_tokens"] < 1000
    assert done["usage"]["output_tokens"] == len(done["text"].split())
    again = await client.call("cancel", {"task_id": task_id})
    assert again == {"ok": True, "status": "cancelled"}


async def test_disconnect_does_not_cancel(server: Server) -> None:
    key = await server.new_key()
    client = await server.client(key)
    ack = await client.call("execute", adhoc(max_tokens=30, tokens_per_second=200))
    await client.sio.disconnect()
    other = await server.client(key)
    await other.call("subscribe", {"task_id": ack["task_id"]})
    done = await other.wait_done(ack["task_id"])
    assert done["status"] == "completed" and len(done["text"].split()) == 30


async def test_run_continuation_sends_earlier_messages(server: Server) -> None:
    client = await server.client(await server.new_key())
    first = await client.call("execute", adhoc("first question", max_tokens=5, tokens_per_second=0))
    first_done = await client.wait_done(first["task_id"])
    follow = {
        **adhoc("second question", max_tokens=5, tokens_per_second=0),
        "run_id": first["run_id"],
    }
    second = await client.call("execute", follow)
    assert second["run_id"] == first["run_id"]
    await client.wait_done(second["task_id"])
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        request = await conn.fetchval(
            "SELECT request FROM ai_tasks WHERE task_id = $1", uuid.UUID(second["task_id"])
        )
        run = await conn.fetchrow(
            "SELECT task_count, messages FROM ai_runs WHERE id = $1", uuid.UUID(first["run_id"])
        )
    finally:
        await conn.close()
    sent = json.loads(request)["messages"]
    assert [m["content"] for m in sent] == ["first question", first_done["text"], "second question"]
    assert run["task_count"] == 2 and len(json.loads(run["messages"])) == 4


async def test_untracked_task_has_no_run(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call(
        "execute", {**adhoc(max_tokens=3, tokens_per_second=0), "track_in_runs": False}
    )
    assert ack["run_id"] is None
    done = await client.wait_done(ack["task_id"])
    assert done["run_id"] is None and done["status"] == "completed"


async def test_request_id_is_idempotent(server: Server) -> None:
    client = await server.client(await server.new_key())
    body = {**adhoc(max_tokens=5, tokens_per_second=0), "request_id": "req-1"}
    acks = await asyncio.gather(*(client.call("execute", body) for _ in range(5)))
    assert len({a["task_id"] for a in acks}) == 1 and len({a["run_id"] for a in acks}) == 1
    await client.wait_done(acks[0]["task_id"])
    later = await client.call("execute", body)
    assert later["task_id"] == acks[0]["task_id"] and later["status"] == "completed"
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM ai_tasks")
    finally:
        await conn.close()
    assert count == 1


async def test_other_users_task_is_not_found(server: Server) -> None:
    alice = await server.client(await server.new_key())
    bob = await server.client(await server.new_key())
    ack = await alice.call("execute", adhoc(max_tokens=200, tokens_per_second=100))
    for event in ("subscribe", "cancel"):
        result = await bob.call(event, {"task_id": ack["task_id"]})
        assert result["ok"] is False and result["error"]["code"] == "not_found"
    cont = await bob.call("execute", {**adhoc(), "run_id": ack["run_id"]})
    assert cont["error"]["code"] == "not_found"
    await alice.call("cancel", {"task_id": ack["task_id"]})
    await alice.wait_done(ack["task_id"])
    # Bob's own task, started after Alice's ended, is the marker: events of her task sent to
    # his socket would have reached it before his own task_done.
    mine = await bob.call("execute", adhoc(max_tokens=3, tokens_per_second=0))
    await bob.wait_done(mine["task_id"])
    assert ack["task_id"] not in bob.chunks and ack["task_id"] not in bob.done


async def test_long_polling_transport_streams_too(server: Server) -> None:
    client = await server.client(await server.new_key(), transports=["polling"])
    ack = await client.call("execute", adhoc(max_tokens=25, tokens_per_second=250))
    done = await client.wait_done(ack["task_id"])
    assert_intact(client, ack["task_id"])
    assert done["status"] == "completed" and len(done["text"].split()) == 25


async def test_stream_survives_pubsub_connection_loss(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", adhoc(max_tokens=150, tokens_per_second=150))
    task_id = ack["task_id"]
    await client.wait_chunks(task_id, 3)
    redis = server.engine.redis
    if isinstance(redis, RedisCluster):  # the pub/sub connections are spread over the nodes
        replies = await redis.execute_command(
            "CLIENT", "KILL", "TYPE", "pubsub", target_nodes=RedisCluster.ALL_NODES
        )
        killed = sum(replies.values()) if isinstance(replies, dict) else replies
    else:
        killed = await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert killed >= 1
    done = await client.wait_done(task_id, timeout=30)
    assert_intact(client, task_id)
    assert len(done["text"].split()) == 150


async def test_finalize_survives_dropped_database_connections(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", adhoc(max_tokens=40, tokens_per_second=100))
    task_id = ack["task_id"]
    await client.wait_chunks(task_id)
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert killed >= 1  # the server's pooled connections are gone
        done = await client.wait_done(task_id)
        status = await conn.fetchval(
            "SELECT status FROM ai_tasks WHERE task_id = $1", uuid.UUID(task_id)
        )
    finally:
        await conn.close()
    assert done["status"] == "completed" and status == "completed"
    assert_intact(client, task_id)
