"""The HTTP routes of docs/protocol.md over a real aiohttp client: executions, the SSE stream,
task and run views, cancel, scoping and limits."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp

from tests.conftest import SMALL_LIMIT, Server
from tests.nodes import until

STREAM_SETTINGS = {"max_tokens": 30, "tokens_per_second": 200}
Event = tuple[str, dict[str, Any]]


def adhoc(text: str = "Hello there", **settings: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": text}],
        "model": "simulated/test",
        "settings": settings or STREAM_SETTINGS,
    }


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def request(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as resp:
        assert resp.content_type == "application/json", (resp.status, await resp.text())
        return resp.status, await resp.json()


async def execute(
    http: aiohttp.ClientSession, server: Server, key: str, body: dict[str, Any]
) -> dict[str, Any]:
    status, data = await request(
        http, "POST", server.url + "/v1/executions", json=body, headers=auth(key)
    )
    assert status == 202, data
    return data


def assert_error(status: int, body: Any, http_status: int, code: str) -> None:
    assert status == http_status, (status, body)
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    text = json.dumps(body)
    assert "Traceback" not in text and 'File "' not in text, body


def parse_sse(raw: str) -> list[Event]:
    """Events of a text/event-stream body: blocks split by blank lines, `event:` and `data:`
    fields (several data lines join with a newline, as EventSource does)."""
    events: list[Event] = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


async def read_stream(
    http: aiohttp.ClientSession, server: Server, key: str, task_id: str, after_seq: int | None = 0
) -> list[Event]:
    query = "" if after_seq is None else f"?after_seq={after_seq}"
    url = f"{server.url}/v1/tasks/{task_id}/stream{query}"
    async with http.get(url, headers=auth(key)) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/event-stream"
        raw = (await resp.read()).decode()
    return parse_sse(raw)


def split_events(events: list[Event], task_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Chunks and the done payload; checks task_done is the one and last event."""
    names = [name for name, _ in events]
    assert names and names[-1] == "task_done" and names.count("task_done") == 1, names
    assert set(names) <= {"task_chunk", "task_done"}, names
    assert all(payload["task_id"] == task_id for _, payload in events)
    chunks = [payload for name, payload in events if name == "task_chunk"]
    return chunks, events[-1][1]


# -- health --------------------------------------------------------------------------------


async def test_health_and_readiness(server: Server, http: aiohttp.ClientSession) -> None:
    status, body = await request(http, "GET", server.url + "/healthz")
    assert status == 200 and body["ok"] is True
    status, body = await request(http, "GET", server.url + "/readyz")
    assert status == 200, body
    assert body["postgres"] is True and body["redis"] is True and body["ok"] is True


# -- POST /v1/executions --------------------------------------------------------------------


async def test_routes_need_a_valid_token(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    some_id = str(uuid.uuid4())
    routes = [
        ("POST", "/v1/executions"),
        ("GET", f"/v1/tasks/{some_id}"),
        ("GET", f"/v1/tasks/{some_id}/events"),
        ("GET", f"/v1/tasks/{some_id}/stream"),
        ("POST", f"/v1/tasks/{some_id}/cancel"),
        ("GET", f"/v1/runs/{some_id}"),
    ]
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {key}"},
        {"Authorization": key},
        {"Authorization": "Bearer " + "x" * 5000},
    ]
    for method, path in routes:
        for headers in bad_headers:
            status, body = await request(
                http, method, server.url + path, json=adhoc(), headers=headers
            )
            assert_error(status, body, 401, "unauthorized")


async def test_bad_json_body_is_invalid(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    headers = {**auth(key), "Content-Type": "application/json"}
    for raw in (b"{", b"not json", b"", b"\xff\xfe\x00", b'{"messages": [}', b"{'a': 1}"):
        status, body = await request(
            http, "POST", server.url + "/v1/executions", data=raw, headers=headers
        )
        assert_error(status, body, 400, "invalid_request")
        assert body["error"]["details"]["errors"], body
    for value in (None, [], "x", 5):
        status, body = await request(
            http, "POST", server.url + "/v1/executions", data=json.dumps(value), headers=headers
        )
        assert_error(status, body, 400, "invalid_request")
        assert body["error"]["details"]["errors"][0]["field"] == "(payload)"
    for payload, field in (
        (adhoc() | {"extra": 1}, "extra"),
        (adhoc() | {"model": "nope/model"}, "model"),
        ({"model": "simulated/x"}, "messages"),
        (adhoc() | {"settings": {"temprature": 1}}, "settings.temprature"),
    ):
        status, body = await request(
            http, "POST", server.url + "/v1/executions", json=payload, headers=auth(key)
        )
        assert_error(status, body, 400, "invalid_request")
        assert field in [e["field"] for e in body["error"]["details"]["errors"]], body
    status, body = await request(
        http,
        "POST",
        server.url + "/v1/executions",
        json=adhoc() | {"run_id": str(uuid.uuid4())},
        headers=auth(key),
    )
    assert_error(status, body, 404, "not_found")


async def test_execution_is_accepted(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    ack = await execute(http, server, key, adhoc(max_tokens=5, tokens_per_second=0))
    assert set(ack) == {"task_id", "run_id", "status"}, ack
    uuid.UUID(ack["task_id"])
    uuid.UUID(ack["run_id"])
    assert ack["status"] in ("queued", "running", "completed"), ack
    untracked = await execute(
        http, server, key, adhoc(max_tokens=5, tokens_per_second=0) | {"track_in_runs": False}
    )
    assert untracked["run_id"] is None


# -- GET /v1/tasks/{id}/stream --------------------------------------------------------------


async def test_stream_delivers_every_chunk_then_done(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    ack = await execute(http, server, key, adhoc())
    events = await read_stream(http, server, key, ack["task_id"], after_seq=0)
    chunks, done = split_events(events, ack["task_id"])
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert len(chunks) > 1, "tokens should arrive over several chunks"
    assert "".join(c["text"] for c in chunks) == done["text"]
    assert done["last_seq"] == len(chunks)
    assert done["status"] == "completed" and done["finish_reason"] == "stop"
    assert len(done["text"].split()) == 30
    assert done["run_id"] == ack["run_id"] and done["cost_usd"] == "0"


async def test_stream_after_seq_sends_only_later_chunks(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    ack = await execute(http, server, key, adhoc())
    full, done = split_events(await read_stream(http, server, key, ack["task_id"]), ack["task_id"])
    last = done["last_seq"]
    assert last >= 3, "need a few chunks to resume in the middle"
    # after the task has ended: the rest from history
    for after in (1, last // 2, last - 1):
        chunks, again = split_events(
            await read_stream(http, server, key, ack["task_id"], after_seq=after), ack["task_id"]
        )
        assert [c["seq"] for c in chunks] == list(range(after + 1, last + 1))
        assert chunks == full[after:]
        assert again["text"] == done["text"] and again["last_seq"] == last
    # at or past the end: only task_done
    for after in (last, last + 100):
        chunks, again = split_events(
            await read_stream(http, server, key, ack["task_id"], after_seq=after), ack["task_id"]
        )
        assert chunks == [] and again["text"] == done["text"]
    # no after_seq means from the start
    chunks, _ = split_events(
        await read_stream(http, server, key, ack["task_id"], None), ack["task_id"]
    )
    assert chunks == full


async def test_stream_resumes_a_running_task(server: Server, http: aiohttp.ClientSession) -> None:
    """A second stream from the middle of a running task joins without gap or duplicate,
    while the first goes on to the end."""
    key = await server.new_key()
    ack = await execute(http, server, key, adhoc(max_tokens=60, tokens_per_second=150))
    url = f"{server.url}/v1/tasks/{ack['task_id']}/stream?after_seq=0"
    async with http.get(url, headers=auth(key)) as resp:
        buffer = ""
        while len([n for n, _ in parse_sse(buffer) if n == "task_chunk"]) < 2:
            buffer += (await resp.content.readline()).decode()
        seen = [p for name, p in parse_sse(buffer) if name == "task_chunk"]
        after = seen[-1]["seq"]
        rest, done = split_events(
            await read_stream(http, server, key, ack["task_id"], after_seq=after), ack["task_id"]
        )
        buffer += (await resp.read()).decode()
    assert [c["seq"] for c in rest] == list(range(after + 1, done["last_seq"] + 1))
    assert "".join(c["text"] for c in seen + rest) == done["text"]
    first, first_done = split_events(parse_sse(buffer), ack["task_id"])
    assert first == seen + rest and first_done == done


def stream_handlers() -> list[asyncio.Task[Any]]:
    """Tasks of this loop that are inside the SSE route handler (the server runs in it)."""
    found = []
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        while coro is not None:
            code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
            if code is not None and code.co_name == "stream_task":
                found.append(task)
                break
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return found


async def test_stream_handler_ends_when_the_client_leaves(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    ack = await execute(http, server, key, adhoc(max_tokens=60, tokens_per_second=150))
    url = f"{server.url}/v1/tasks/{ack['task_id']}/stream?after_seq=0"
    async with http.get(url, headers=auth(key)) as resp:
        await resp.content.readline()
        if len(stream_handlers()) != 1:
            raise RuntimeError("cannot see the SSE handler in this loop's tasks")
    # the client is gone; the task ends
    split_events(await read_stream(http, server, key, ack["task_id"]), ack["task_id"])
    try:  # the handler notices within a second (docs/protocol.md); 5 s bounds a failure
        await until(lambda: not stream_handlers(), 5, "the SSE handler to end")
    finally:
        for task in stream_handlers():  # so that the server's shutdown does not wait for them
            task.cancel()


async def test_stream_rejects_a_bad_after_seq(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    ack = await execute(http, server, key, adhoc(max_tokens=5, tokens_per_second=0))
    for value in ("-1", "x", "1.5", "", "1e3", "0x10"):
        status, body = await request(
            http,
            "GET",
            f"{server.url}/v1/tasks/{ack['task_id']}/stream",
            params={"after_seq": value},
            headers=auth(key),
        )
        assert_error(status, body, 400, "invalid_request")
        assert body["error"]["details"]["errors"][0]["field"] == "after_seq"


# -- views ---------------------------------------------------------------------------------


async def finished(
    http: aiohttp.ClientSession, server: Server, key: str, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Execute and wait for the end through the stream; (202 body, task_done)."""
    ack = await execute(http, server, key, body)
    _, done = split_events(await read_stream(http, server, key, ack["task_id"]), ack["task_id"])
    return ack, done


async def test_task_view_after_completion(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    body = adhoc("one two three", max_tokens=12, tokens_per_second=0)
    ack, done = await finished(http, server, key, body)
    status, view = await request(
        http, "GET", f"{server.url}/v1/tasks/{ack['task_id']}", headers=auth(key)
    )
    assert status == 200, view
    assert view["id"] == ack["task_id"] and view["run_id"] == ack["run_id"]
    assert view["status"] == "completed" and view["finish_reason"] == "stop"
    assert view["text"] == done["text"] and len(view["text"].split()) == 12
    assert view["usage"] == {
        "input_tokens": 3,
        "output_tokens": 12,
        "total_tokens": 15,
        "reasoning_tokens": 0,
    }
    assert view["usage"] == done["usage"]
    assert view["usage_source"] == "provider" and view["cost_usd"] == "0"
    assert view["request"]["messages"] == body["messages"]
    assert view["request"]["settings"] == body["settings"]
    assert view["provider"] == "simulated" and view["model"] == "test"
    assert view["last_seq"] == done["last_seq"]
    assert view["created_at"] and view["ended_at"] and view["ended_at"] >= view["created_at"]
    assert view["ttft_ms"] is not None and view["latency_ms"] >= view["ttft_ms"]
    for field in ("validation", "error", "prompt_id", "prompt_version"):
        assert field in view, field
    assert view["error"] is None and view["prompt_id"] is None


async def test_task_events_are_the_execution_log(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    ack, _ = await finished(http, server, key, adhoc(max_tokens=5, tokens_per_second=0))
    status, body = await request(
        http, "GET", f"{server.url}/v1/tasks/{ack['task_id']}/events", headers=auth(key)
    )
    assert status == 200, body
    items = body["items"]
    assert [i["kind"] for i in items] == ["queued", "provider_call", "first_token", "finalized"]
    for item in items:
        assert {"at", "kind", "data"} <= set(item), item
    times = [i["at"] for i in items]
    assert times == sorted(times)


async def test_run_view_has_the_conversation(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    ack, done = await finished(
        http, server, key, adhoc("first question", max_tokens=7, tokens_per_second=0)
    )
    status, run = await request(
        http, "GET", f"{server.url}/v1/runs/{ack['run_id']}", headers=auth(key)
    )
    assert status == 200, run
    assert run["id"] == ack["run_id"]
    assert run["messages"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": done["text"]},
    ]
    assert len(run["tasks"]) == 1 and run["tasks"][0]["id"] == ack["task_id"]
    assert run["tasks"][0]["status"] == "completed"
    assert run["usage"] == {
        "input_tokens": 2,
        "output_tokens": 7,
        "total_tokens": 9,
        "reasoning_tokens": 0,
    }
    assert run["usage"] == done["usage"] and run["cost_usd"] == "0"
    assert run["created_at"] and "name" in run


# -- cancel --------------------------------------------------------------------------------


async def test_cancel_a_long_running_task(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key()
    ack = await execute(http, server, key, adhoc(max_tokens=5000, tokens_per_second=50))
    task_url = f"{server.url}/v1/tasks/{ack['task_id']}"
    async with http.get(task_url + "/stream?after_seq=0", headers=auth(key)) as resp:
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 20)
        assert b"event: task_chunk" in first, first  # the task streams: cancel it
        status, body = await request(http, "POST", task_url + "/cancel", headers=auth(key))
        assert (status, body) == (200, {"status": "cancelled"})
        rest = await asyncio.wait_for(resp.read(), 10)
    chunks, done = split_events(parse_sse((first + rest).decode()), ack["task_id"])
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert "".join(c["text"] for c in chunks) == done["text"]
    assert done["status"] == "cancelled" and done["finish_reason"] == "cancelled"
    status, view = await request(http, "GET", task_url, headers=auth(key))
    assert view["status"] == "cancelled" and view["ended_at"] is not None
    assert 0 < view["usage"]["output_tokens"] < 5000
    status, body = await request(http, "POST", task_url + "/cancel", headers=auth(key))
    assert (status, body) == (200, {"status": "cancelled"})


async def test_cancel_an_ended_task_gives_its_status(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    ack, _ = await finished(http, server, key, adhoc(max_tokens=5, tokens_per_second=0))
    status, body = await request(
        http, "POST", f"{server.url}/v1/tasks/{ack['task_id']}/cancel", headers=auth(key)
    )
    assert (status, body) == (200, {"status": "completed"})


# -- scoping -------------------------------------------------------------------------------


async def test_foreign_and_unknown_ids_are_the_same_not_found(
    server: Server, http: aiohttp.ClientSession
) -> None:
    alice, bob = await server.new_key(), await server.new_key()
    ack = await execute(http, server, alice, adhoc(max_tokens=300, tokens_per_second=100))
    ids = {
        "foreign": (ack["task_id"], ack["run_id"]),
        "not a uuid": ("not-a-uuid", "xyz"),
        "random": (str(uuid.uuid4()), str(uuid.uuid4())),
        "odd": ("%E2%80%AE%00", "00000000-0000-0000-0000-00000000000g"),
    }
    routes = [
        ("GET", "/v1/tasks/{task}"),
        ("GET", "/v1/tasks/{task}/events"),
        ("GET", "/v1/tasks/{task}/stream?after_seq=0"),
        ("POST", "/v1/tasks/{task}/cancel"),
        ("GET", "/v1/runs/{run}"),
    ]
    for method, template in routes:
        answers = []
        for task_id, run_id in ids.values():
            url = server.url + template.format(task=task_id, run=run_id)
            status, body = await request(http, method, url, headers=auth(bob))
            assert_error(status, body, 404, "not_found")
            answers.append(body)
        assert all(a == answers[0] for a in answers), (template, answers)
    # bob's cancel did nothing: alice's task runs on
    status, view = await request(
        http, "GET", f"{server.url}/v1/tasks/{ack['task_id']}", headers=auth(alice)
    )
    assert view["status"] in ("queued", "running"), view
    await request(
        http, "POST", f"{server.url}/v1/tasks/{ack['task_id']}/cancel", headers=auth(alice)
    )


# -- limits --------------------------------------------------------------------------------


async def test_oversized_body_is_payload_too_large(
    small_server: Server, http: aiohttp.ClientSession
) -> None:
    key = await small_server.new_key()
    url = small_server.url + "/v1/executions"
    for size in (SMALL_LIMIT + 1, SMALL_LIMIT * 4, SMALL_LIMIT * 40):
        body = adhoc("x" * size, max_tokens=5, tokens_per_second=0)
        status, data = await request(http, "POST", url, json=body, headers=auth(key))
        assert_error(status, data, 413, "payload_too_large")
    status, data = await request(
        http, "POST", url, data=b"{" + b" " * (SMALL_LIMIT * 2), headers=auth(key)
    )
    assert_error(status, data, 413, "payload_too_large")
    # and the server goes on answering
    ack = await execute(
        http, small_server, key, adhoc("x" * 3000, max_tokens=5, tokens_per_second=0)
    )
    assert ack["status"] in ("queued", "running", "completed")


async def test_non_ascii_body_under_the_limit_is_accepted(
    small_server: Server, http: aiohttp.ClientSession
) -> None:
    key = await small_server.new_key()
    body = json.dumps(
        adhoc("\u00e9" * 1400, max_tokens=5, tokens_per_second=0), ensure_ascii=False
    ).encode()
    assert len(body) < SMALL_LIMIT * 3 // 4
    status, data = await request(
        http, "POST", small_server.url + "/v1/executions", data=body, headers=auth(key)
    )
    assert status == 202, data


async def test_body_too_deep_to_parse_is_invalid(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    for body in (
        "[" * 5000 + "]" * 5000,
        '{"broker_values": {"a": ' + "[" * 5000 + "]" * 5000 + "}}",
    ):
        status, data = await request(
            http, "POST", server.url + "/v1/executions", data=body, headers=auth(key)
        )
        assert_error(status, data, 400, "invalid_request")


async def test_unstorable_values_are_client_errors(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    bodies = [
        json.dumps(adhoc("a\x00b")),
        json.dumps(adhoc() | {"broker_values": {"a": float("nan")}}),
        json.dumps(adhoc() | {"prompt_id": str(uuid.uuid4()), "version": 2**40}),
    ]
    statuses = []
    for body in bodies:
        status, data = await request(
            http, "POST", server.url + "/v1/executions", data=body, headers=auth(key)
        )
        statuses.append((status, data["error"]["code"] if status >= 400 else None))
    assert all(400 <= status < 500 for status, _ in statuses), statuses
