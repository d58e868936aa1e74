"""Conversations over real HTTP and Socket.IO: the run list (titles, previews, totals,
order, paging, search, archive), renaming, deleting (everything of the run answers
not_found afterwards, the usage log stays), the executions list, and `runs_changed`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp

from db.pool import connect
from engine.protocol import paging
from engine.protocol.conversations import RunPage, RunsChanged, RunSummary, TaskPage
from tests.conftest import Client, Server, start_server, stop_server

FAST = {"max_tokens": 3, "tokens_per_second": 0}
SLOW = {"max_tokens": 400, "tokens_per_second": 40}


def say(text: str, run_id: str | None = None, **settings: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": text}],
        "model": "simulated/h",
        "settings": settings or FAST,
    }
    if run_id is not None:
        body["run_id"] = run_id
    return body


class Api:
    def __init__(self, http: aiohttp.ClientSession, server: Server, key: str) -> None:
        self.http, self.server, self.key = http, server, key

    async def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method,
            self.server.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.key}"},
        ) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()


async def chat(client: Client, text: str, run_id: str | None = None) -> dict[str, Any]:
    ack = await client.call("execute", say(text, run_id))
    assert ack["ok"], ack
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "completed", done
    return ack


async def test_runs_list_titles_previews_totals_and_order(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    api, client = Api(http, server, key), await server.client(key)
    first = await chat(client, "  Plan my\n  Paris   trip  ")
    second = await chat(client, "Second conversation")
    await chat(client, "And one more thing", first["run_id"])  # first is now the most recent
    status, page = await api("GET", "/v1/runs")
    assert status == 200, page
    RunPage.model_validate(page)
    assert [r["id"] for r in page["items"]] == [first["run_id"], second["run_id"]]
    top = page["items"][0]
    assert top["title"] == "Plan my Paris trip"
    assert top["task_count"] == 2 and top["archived"] is False
    assert top["last_message"]["role"] == "assistant"
    _, run = await api("GET", f"/v1/runs/{first['run_id']}")
    assert top["last_message"]["preview"] == run["messages"][-1]["content"][:120]
    assert top["usage"] == run["usage"] and top["cost_usd"] == run["cost_usd"]
    assert top["usage"]["total_tokens"] > 0
    assert page["next_cursor"] is None


async def test_runs_paging_search_rename_archive(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    api, client = Api(http, server, key), await server.client(key)
    runs = [
        (await chat(client, f"topic {n} {'needle' if n == 1 else ''}"))["run_id"] for n in range(5)
    ]
    seen: list[str] = []
    cursor = ""
    while True:
        status, page = await api("GET", f"/v1/runs?limit=2&cursor={cursor}")
        assert status == 200, page
        seen += [r["id"] for r in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == runs[::-1]
    _, found = await api("GET", "/v1/runs?q=NEEDLE")
    assert [r["id"] for r in found["items"]] == [runs[1]]

    status, renamed = await api("PATCH", f"/v1/runs/{runs[0]}", {"title": "  Renamed  "})
    assert status == 200, renamed
    RunSummary.model_validate(renamed)
    assert renamed["title"] == "Renamed"
    _, found = await api("GET", "/v1/runs?q=renamed")
    assert [r["id"] for r in found["items"]] == [runs[0]]
    # one field name in every view: the run's own view says `title` too
    _, view = await api("GET", f"/v1/runs/{runs[0]}")
    assert view["title"] == "Renamed" and view["name"] == "Renamed"  # `name`: deprecated
    # renaming is not activity: the order stays
    _, page = await api("GET", "/v1/runs")
    assert [r["id"] for r in page["items"]] == runs[::-1]

    status, archived = await api("PATCH", f"/v1/runs/{runs[2]}", {"archived": True})
    assert status == 200 and archived["archived"] is True
    _, page = await api("GET", "/v1/runs")
    assert runs[2] not in [r["id"] for r in page["items"]]
    _, only = await api("GET", "/v1/runs?archived=true")
    assert [r["id"] for r in only["items"]] == [runs[2]]
    _, every = await api("GET", "/v1/runs?archived=all")
    assert len(every["items"]) == 5
    await api("PATCH", f"/v1/runs/{runs[2]}", {"archived": False})
    _, page = await api("GET", "/v1/runs")
    assert len(page["items"]) == 5


async def test_runs_bad_input_gets_stable_errors(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    api, client = Api(http, server, key), await server.client(key)
    run = (await chat(client, "hello"))["run_id"]
    for method, path, body in [
        ("GET", "/v1/runs?cursor=!!!", None),
        ("GET", "/v1/runs?cursor=bm90LWEtcG9zaXRpb24", None),
        ("GET", "/v1/runs?limit=0", None),
        ("GET", "/v1/runs?archived=maybe", None),
        ("PATCH", f"/v1/runs/{run}", {"title": "   "}),
        ("PATCH", f"/v1/runs/{run}", {"title": "x" * 201}),
        ("PATCH", f"/v1/runs/{run}", {"archived": "yes"}),
        ("PATCH", f"/v1/runs/{run}", {"name": "typo"}),
        ("PATCH", f"/v1/runs/{run}", [1]),
    ]:
        status, answer = await api(method, path, body)
        assert status == 400 and answer["error"]["code"] == "invalid_request", (path, answer)
    status, answer = await api("PATCH", "/v1/runs/not-a-uuid", {"title": "x"})
    assert status == 404 and answer["error"]["code"] == "not_found"


async def test_delete_run_everything_answers_not_found_usage_stays(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key("deleter@history")
    api, client = Api(http, server, key), await server.client(key)
    replayed = {**say("to be deleted"), "request_id": "once"}
    first = await client.call("execute", replayed)
    await client.wait_done(first["task_id"])
    running = await client.call("execute", say("still streaming", first["run_id"], **SLOW))
    assert running["ok"], running
    kept = await chat(client, "a run that stays")

    status, body = await api("DELETE", f"/v1/runs/{first['run_id']}")
    assert status == 204, body
    done = await client.wait_done(running["task_id"])  # the unfinished task was cancelled
    assert done["status"] == "cancelled"

    run, tasks = first["run_id"], [first["task_id"], running["task_id"]]
    for method, path, payload in [
        ("GET", f"/v1/runs/{run}", None),
        ("PATCH", f"/v1/runs/{run}", {"title": "back?"}),
        ("DELETE", f"/v1/runs/{run}", None),
        ("POST", "/v1/executions", say("again", run)),
        *[("GET", f"/v1/tasks/{t}", None) for t in tasks],
        *[("GET", f"/v1/tasks/{t}/events", None) for t in tasks],
        *[("GET", f"/v1/tasks/{t}/stream", None) for t in tasks],
        *[("POST", f"/v1/tasks/{t}/cancel", None) for t in tasks],
    ]:
        status, answer = await api(method, path, payload)
        assert status == 404 and answer["error"]["code"] == "not_found", (method, path, answer)
    for task in tasks:
        answer = await client.call("subscribe", {"task_id": task})
        assert answer["ok"] is False and answer["error"]["code"] == "not_found", answer
    answer = await client.call("execute", say("again", run))
    assert answer["ok"] is False and answer["error"]["code"] == "not_found", answer

    _, page = await api("GET", "/v1/runs")
    assert [r["id"] for r in page["items"]] == [kept["run_id"]]
    _, executions = await api("GET", "/v1/tasks")
    assert [t["id"] for t in executions["items"]] == [kept["task_id"]]
    # billing keeps every finished task, the deleted ones included
    _, usage = await api("GET", "/v1/usage")
    assert sum(row["tasks"] for row in usage["items"]) == 3, usage
    conn = await connect(server.settings.database_url or "")
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM ai_usage_logs u JOIN users s ON s.id = u.user_id"
            " WHERE s.email = 'deleter@history' AND u.task_id IS NULL"
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM task_events WHERE task_id = ANY($1::uuid[])",
            [uuid.UUID(t) for t in tasks],
        )
    finally:
        await conn.close()
    assert left == 2 and events == 0
    # the same request_id again is a new task in a new run, not the deleted one
    again = await client.call("execute", replayed)
    assert again["ok"] and again["task_id"] not in tasks and again["run_id"] != run, again
    assert (await client.wait_done(again["task_id"]))["status"] == "completed"


async def test_executions_list_filters_and_pages(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    api, client = Api(http, server, key), await server.client(key)
    a = await chat(client, "one")
    b = await chat(client, "two", a["run_id"])
    c = await chat(client, "three")
    slow = await client.call("execute", {**say("four", **SLOW), "priority": "high"})
    await client.call("cancel", {"task_id": slow["task_id"]})
    await client.wait_done(slow["task_id"])

    status, page = await api("GET", "/v1/tasks")
    assert status == 200, page
    TaskPage.model_validate(page)
    newest_first = [slow["task_id"], c["task_id"], b["task_id"], a["task_id"]]
    assert [t["id"] for t in page["items"]] == newest_first
    top = page["items"][0]
    assert top["status"] == "cancelled" and top["priority"] == "high"
    assert page["items"][1]["priority"] == "low"  # a free user's default
    assert page["items"][1]["model"] == "h" and page["items"][1]["provider"] == "simulated"
    assert page["items"][1]["latency_ms"] is not None and page["items"][1]["usage"]

    _, by_run = await api("GET", f"/v1/tasks?run_id={a['run_id']}")
    assert [t["id"] for t in by_run["items"]] == [b["task_id"], a["task_id"]]
    _, by_status = await api("GET", "/v1/tasks?status=cancelled")
    assert [t["id"] for t in by_status["items"]] == [slow["task_id"]]
    seen, cursor = [], ""
    while True:
        _, part = await api("GET", f"/v1/tasks?limit=3&cursor={cursor}")
        seen += [t["id"] for t in part["items"]]
        if not part["next_cursor"]:
            break
        cursor = part["next_cursor"]
    assert seen == newest_first
    created = page["items"][2]["created_at"]  # b
    _, since = await api("GET", f"/v1/tasks?from={quote(created)}")
    assert [t["id"] for t in since["items"]] == newest_first[:3]
    _, before = await api("GET", f"/v1/tasks?to={quote(created)}")
    assert [t["id"] for t in before["items"]] == newest_first[3:]
    _, none = await api("GET", "/v1/tasks?from=2001-01-01&to=2001-01-02")
    assert none == {"items": [], "next_cursor": None}
    for bad in (
        "status=done",
        "from=yesterday",
        "run_id=x",
        "from=2002-01-02&to=2002-01-01",
        "from=0001-01-01T00:00:00%2B14:00",
        "to=9999-12-31T23:59:59-14:00",
        "cursor=MjAyNi0wMS0wMXxub3Bl",
        "cursor=" + paging.encode(f"0001-01-01T00:00:00+14:00|{uuid.UUID(int=0)}"),  # year 0
    ):
        status, answer = await api("GET", f"/v1/tasks?{bad}")
        assert status == 400 and answer["error"]["code"] == "invalid_request", (bad, answer)


async def test_runs_changed_keeps_two_tabs_in_step(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    api = Api(http, server, key)
    tab1 = await server.client(key, runs_changed=True)
    tab2 = await server.client(key, runs_changed=True)
    script = await server.client(key)  # did not ask for the feed
    stranger = await server.client(await server.new_key(), runs_changed=True)
    heard: dict[str, asyncio.Queue[dict[str, Any]]] = {}
    tabs = (("tab1", tab1), ("tab2", tab2), ("script", script), ("stranger", stranger))
    for name, tab in tabs:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        heard[name] = queue
        tab.sio.on("runs_changed", queue.put_nowait)

    async def next_change(name: str) -> dict[str, Any]:
        payload = await asyncio.wait_for(heard[name].get(), 10)
        RunsChanged.model_validate(payload)
        return payload

    run = (await chat(tab1, "Plan my Paris trip"))["run_id"]
    for tab in ("tab1", "tab2"):
        change = await next_change(tab)
        assert change["change"] == "created" and change["run_id"] == run
        assert change["run"]["title"] == "Plan my Paris trip"
        assert change["run"]["task_count"] == 0 and change["run"]["last_message"] is None
    _, page = await api("GET", "/v1/runs")
    assert page["items"][0]["created_at"] == change["run"]["created_at"]
    await api("PATCH", f"/v1/runs/{run}", {"title": "Paris"})
    for tab in ("tab1", "tab2"):
        change = await next_change(tab)
        assert (change["change"], change["run"]["title"]) == ("updated", "Paris")
    await api("DELETE", f"/v1/runs/{run}")
    for tab in ("tab1", "tab2"):
        change = await next_change(tab)
        assert change == {"run_id": run, "change": "deleted", "run": None}
    # the stranger's own run arrives; nothing of the other user's came before it
    own = (await chat(stranger, "mine"))["run_id"]
    change = await next_change("stranger")
    assert change["run_id"] == own and heard["stranger"].empty()
    # a socket of the same key that did not ask heard none of it, not even its own runs
    await chat(script, "from a script")
    await next_change("tab1")
    await next_change("tab2")
    await asyncio.sleep(0.3)  # what the room sent the tabs would have reached it by now
    assert heard["script"].empty()


async def test_runs_changed_reaches_the_owner_on_another_node(
    server: Server, http: aiohttp.ClientSession
) -> None:
    other_node = await start_server(server.settings)  # same Postgres, Redis and prefix
    try:
        key = await server.new_key()
        here, there = await server.client(key), await other_node.client(key, runs_changed=True)
        heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        there.sio.on("runs_changed", heard.put_nowait)
        run = (await chat(here, "Started on the first node"))["run_id"]
        change = await asyncio.wait_for(heard.get(), 10)
        assert (change["change"], change["run_id"]) == ("created", run)
        await Api(http, server, key)("DELETE", f"/v1/runs/{run}")
        change = await asyncio.wait_for(heard.get(), 10)
        assert change == {"run_id": run, "change": "deleted", "run": None}
    finally:
        await stop_server(other_node)
