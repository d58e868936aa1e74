"""The prompt library over HTTP: create, versions, publish, archive, delete, list and page,
builtins; bodies are checked when saved, not when run."""

from __future__ import annotations

import aiohttp
import asyncpg

from tests.conftest import Server
from tests.library_helpers import api_for, db, prompt_body, sent_messages

__all__ = ["db"]  # fixture


async def test_prompt_lifecycle_versions_publish_archive_delete(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    owner = await api_for(http, server)
    created = await owner.call("POST", "/v1/prompts", prompt_body(), expect=201)
    assert created["status"] == "draft" and created["version"] == 1
    assert created["published_version"] is None
    pid = created["id"]
    run = {"prompt_id": pid, "variables": {"topic": "tides"}}
    # A draft runs only pinned, and only for its owner.
    assert (await owner.execute(run))["error"]["code"] == "not_found"
    stranger = await api_for(http, server)
    assert (await stranger.execute({**run, "version": 1}))["error"]["code"] == "not_found"
    done = await owner.run({**run, "version": 1})
    assert await sent_messages(db, done["task_id"]) == [
        "You are a teacher.",
        "Explain tides in English.",
    ]

    patched = await owner.call(
        "PATCH",
        f"/v1/prompts/{pid}",
        {
            "messages": [{"role": "user", "content": "Teach {{topic}} briefly."}],
            "tags": ["docs", "short"],
            "change_log": "shorter",
        },
        expect=200,
    )
    assert patched["version"] == 2 and patched["change_log"] == "shorter"
    assert patched["variables"] == created["variables"]  # fields not sent are kept
    first = await owner.call("GET", f"/v1/prompts/{pid}/versions/1", expect=200)
    assert first["messages"] == created["messages"]  # versions are immutable
    versions = await owner.call("GET", f"/v1/prompts/{pid}/versions", expect=200)
    assert [(v["version"], v["change_log"]) for v in versions["items"]] == [
        (1, "created"),
        (2, "shorter"),
    ]
    first_page = await owner.call("GET", f"/v1/prompts/{pid}/versions?limit=1", expect=200)
    assert [v["version"] for v in first_page["items"]] == [1]
    rest = await owner.call(
        "GET", f"/v1/prompts/{pid}/versions?limit=1&cursor={first_page['next_cursor']}", expect=200
    )
    assert [v["version"] for v in rest["items"]] == [2] and rest["next_cursor"] is None

    published = await owner.call("POST", f"/v1/prompts/{pid}/versions/2/publish", expect=200)
    assert published["status"] == "published" and published["published_version"] == 2
    done = await owner.run(run)
    assert await sent_messages(db, done["task_id"]) == ["Teach tides briefly."]
    view = await owner.call("GET", f"/v1/tasks/{done['task_id']}", expect=200)
    assert view["prompt_id"] == pid and view["prompt_version"] == 2
    await owner.call("POST", f"/v1/prompts/{pid}/versions/9/publish", expect=404)

    archived = await owner.call("POST", f"/v1/prompts/{pid}/archive", expect=200)
    assert archived["status"] == "archived"
    assert (await owner.execute(run))["error"]["code"] == "not_found"
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/versions")):
        body = {"change_log": "x"} if method == "PATCH" else None
        await stranger.call(method, f"/v1/prompts/{pid}{path}", body, expect=404)
    await owner.call("DELETE", f"/v1/prompts/{pid}", expect=204)
    await owner.call("GET", f"/v1/prompts/{pid}", expect=404)
    assert await db.fetchval("SELECT count(*) FROM prompt_versions") == 0


async def test_list_filters_and_pages(server: Server, http: aiohttp.ClientSession) -> None:
    owner = await api_for(http, server)
    ids = []
    for name, tags in (("Alpha mail", ["mail"]), ("Beta docs", ["docs"]), ("Gamma docs", ["docs"])):
        created = await owner.call(
            "POST", "/v1/prompts", prompt_body(name=name, tags=tags), expect=201
        )
        ids.append(created["id"])
    await owner.call("POST", f"/v1/prompts/{ids[0]}/versions/1/publish", expect=200)
    other = await api_for(http, server)
    assert (await other.call("GET", "/v1/prompts", expect=200))["items"] == []

    def names(page: dict[str, list[dict[str, str]]]) -> list[str]:
        return [p["name"] for p in page["items"]]

    assert names(await owner.call("GET", "/v1/prompts?tag=docs", expect=200)) == [
        "Gamma docs",
        "Beta docs",
    ]
    assert names(await owner.call("GET", "/v1/prompts?status=published", expect=200)) == [
        "Alpha mail"
    ]
    assert names(await owner.call("GET", "/v1/prompts?q=GAMMA", expect=200)) == ["Gamma docs"]
    first = await owner.call("GET", "/v1/prompts?limit=2", expect=200)
    assert names(first) == ["Gamma docs", "Beta docs"] and first["next_cursor"]
    second = await owner.call(
        "GET", f"/v1/prompts?limit=2&cursor={first['next_cursor']}", expect=200
    )
    assert names(second) == ["Alpha mail"] and second["next_cursor"] is None
    for query in ("limit=0", "limit=201", "limit=x", "cursor=bogus", "status=gone"):
        error = await owner.call("GET", f"/v1/prompts?{query}", expect=400)
        assert error["error"]["code"] == "invalid_request"


async def test_bad_bodies_are_refused_when_saved(
    server: Server, http: aiohttp.ClientSession
) -> None:
    owner = await api_for(http, server)
    cases = {
        "function": {"validations": [{"type": "function", "code": "return true"}]},
        "schema": {"validations": [{"type": "json_schema", "schema": {"type": "nope"}}]},
        "regex": {"validations": [{"type": "regex", "pattern": "(unclosed"}]},
        "remote_ref": {
            "validations": [
                {
                    "type": "json_schema",
                    "schema": {"properties": {"a": {"$ref": "http://127.0.0.1:9/evil.json"}}},
                }
            ]
        },
        "enum": {"variables": [{"name": "x", "type": "enum"}]},
        "default": {"variables": [{"name": "n", "type": "number", "default": "many"}]},
        "twice": {"variables": [{"name": "a"}, {"name": "a"}]},
        "model": {"model": "no-provider"},
        "messages": {"messages": []},
    }
    for case, override in cases.items():
        status, body = await owner.call("POST", "/v1/prompts", prompt_body(**override))
        assert status == 400 and body["error"]["code"] == "invalid_request", (case, body)
        assert body["error"]["details"]["errors"], case
    _, refused = await owner.call("POST", "/v1/prompts", prompt_body(**cases["function"]))
    assert "no user code runs on this server" in refused["error"]["details"]["errors"][0]["message"]
    assert (await owner.call("GET", "/v1/prompts", expect=200))["items"] == []
    created = await owner.call("POST", "/v1/prompts", prompt_body(), expect=201)
    status, body = await owner.call(
        "PATCH",
        f"/v1/prompts/{created['id']}",
        {"validations": [{"type": "regex", "pattern": "["}]},
    )
    assert status == 400
    assert (await owner.call("GET", f"/v1/prompts/{created['id']}", expect=200))["version"] == 1


async def test_builtins_are_listed_and_runnable_but_not_changeable(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    user = await api_for(http, server)
    builtins = (await user.call("GET", "/v1/builtins", expect=200))["items"]
    by_name = {b["name"]: b for b in builtins}
    assert {"summarize", "translate", "code-review"} <= set(by_name)
    # Builtins are not prompts of anyone: no route changes one.
    code_review = by_name["code-review"]["id"]
    await user.call("PATCH", f"/v1/prompts/{code_review}", {"change_log": "x"}, expect=404)
    await user.call("DELETE", f"/v1/prompts/{code_review}", expect=404)
    done = await user.run(
        {
            "builtin": "translate",
            "model": "simulated/t",
            "settings": {"max_tokens": 3, "tokens_per_second": 0},
            "variables": {"text": "Hallo", "language": "English"},
        }
    )
    assert done["status"] == "completed" and done["validation"]["status"] == "skipped"
    assert (await sent_messages(db, done["task_id"]))[1] == "Translate into English:\n\nHallo"
    # code-review answers JSON with a schema; the simulator's words are not JSON.
    reviewed = await user.run(
        {
            "builtin": "code-review",
            "model": "simulated/r",
            "settings": {"max_tokens": 3, "tokens_per_second": 0},
            "variables": {"code": "x = 1"},
        }
    )
    assert reviewed["validation"]["status"] == "failed"
    assert [e["type"] for e in reviewed["validation"]["errors"]] == ["json_schema"]
