"""Agents: templates and instances, run as an `execute` with `agent_id`, their executions
tracked (a turn with its tool continuations is one execution), per-agent counters exact
under concurrent runs on two nodes (counted in SQL at finalize), and the system prompt
leading every model call, in a new run and an existing one, as the fake provider got it."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import asyncpg

from engine.settings import Settings
from tests.conftest import Server, start_server, stop_server
from tests.library_helpers import api_for, db, sent_messages
from tests.provider_env import fakes, fetch, provider_server, provider_settings
from tests.test_team_prompts import join

__all__ = ["db"]  # fixture

TEMPLATE: dict[str, Any] = {
    "name": "Support",
    "description": "answers customers",
    "system_prompt": "You are {{persona}} for {{company}}.",
    "variables": [
        {"name": "persona", "type": "string", "required": True},
        {"name": "company", "type": "string", "required": True},
    ],
    "model": "simulated/agent-default",
    "settings": {"max_tokens": 4, "tokens_per_second": 0},
}


async def test_an_agent_runs_with_its_values_and_tracks_executions(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    owner = await api_for(http, server)
    template = await owner.call("POST", "/v1/agent-templates", TEMPLATE, expect=201)
    assert template["role"] == "admin" and template["org_id"] is None
    body = {
        "template_id": template["id"],
        "name": "Ada",
        "variables": {"persona": "Ada"},
        "model": "simulated/agent-override",
    }
    agent = await owner.call("POST", "/v1/agents", body, expect=201)
    assert agent["execution_count"] == 0 and agent["average_execution_ms"] is None
    aid = agent["id"]

    missing = await owner.execute({"agent_id": aid})
    assert missing["error"]["code"] == "missing_variables"
    assert missing["error"]["details"]["missing"] == ["company"]
    run = {
        "agent_id": aid,
        "variables": {"company": "Acme"},
        "messages": [{"role": "user", "content": "Where is my parcel?"}],
    }
    done = await owner.run(run)
    assert done["status"] == "completed", done
    assert await sent_messages(db, done["task_id"]) == [
        "You are Ada for Acme.",
        "Where is my parcel?",
    ]
    task = await owner.call("GET", f"/v1/tasks/{done['task_id']}", expect=200)
    assert task["model"] == "agent-override"
    both = await owner.execute({**run, "prompt_id": str(uuid.uuid4())})
    assert both["error"]["code"] == "invalid_request"

    page = await owner.call("GET", f"/v1/agents/{aid}/executions", expect=200)
    [execution] = page["items"]
    assert execution["task_id"] == done["task_id"] and execution["status"] == "completed"
    assert execution["tokens_used"] > 0 and execution["model_calls"] == 1
    assert execution["result"] and execution["error"] is None
    assert execution["execution_ms"] is not None and execution["completed_at"]
    seen = await owner.call("GET", f"/v1/agents/{aid}", expect=200)
    assert seen["execution_count"] == 1 and seen["last_executed_at"]
    assert seen["average_execution_ms"] is not None

    # Render cache: the agent's render is stored once and counted on reuse.
    await owner.run(run)
    uses = await db.fetchval("SELECT max(usage_count) FROM generated_prompts")
    assert uses == 2
    first = await owner.call("GET", f"/v1/agents/{aid}/executions?limit=1", expect=200)
    rest = await owner.call(
        "GET", f"/v1/agents/{aid}/executions?limit=1&cursor={first['next_cursor']}", expect=200
    )
    assert [e["task_id"] for e in rest["items"]] == [done["task_id"]]

    changed = await owner.call(
        "PATCH", f"/v1/agents/{aid}", {"name": "Ada 2", "model": None}, expect=200
    )
    assert changed["name"] == "Ada 2" and changed["model"] is None
    assert changed["variables"] == {"persona": "Ada"}
    again = await owner.run(run)
    task = await owner.call("GET", f"/v1/tasks/{again['task_id']}", expect=200)
    assert task["model"] == "agent-default"
    listed = await owner.call("GET", "/v1/agents", expect=200)
    assert [a["name"] for a in listed["items"]] == ["Ada 2"]
    await owner.call("DELETE", f"/v1/agents/{aid}", expect=204)
    await owner.call("GET", f"/v1/agents/{aid}", expect=404)
    assert (await owner.execute(run))["error"]["code"] == "not_found"


async def test_org_agents_members_run_admins_write_others_not_found(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    admin, member, outsider = [await api_for(http, server) for _ in range(3)]
    org = (await admin.call("POST", "/v1/orgs", {"name": "Acme"}, expect=201))["id"]
    await join(admin, member, "org", org)
    await admin.call("PUT", f"/v1/orgs/{org}/variables/company", {"value": "Acme Inc"}, 200)
    await member.call("POST", "/v1/agent-templates", {**TEMPLATE, "org_id": org}, expect=403)
    await outsider.call("POST", "/v1/agent-templates", {**TEMPLATE, "org_id": org}, expect=404)
    template = await admin.call("POST", "/v1/agent-templates", {**TEMPLATE, "org_id": org}, 201)
    body = {"template_id": template["id"], "name": "Bot", "variables": {"persona": "Bot"}}
    await member.call("POST", "/v1/agents", {**body, "org_id": org}, expect=403)
    # A template one cannot read is not found, whatever the agent's owner.
    await outsider.call("POST", "/v1/agents", body, expect=404)
    agent = await admin.call("POST", "/v1/agents", {**body, "org_id": org}, expect=201)
    aid = agent["id"]

    assert (await member.call("GET", f"/v1/agents/{aid}", expect=200))["role"] == "member"
    await member.call("GET", f"/v1/agent-templates/{template['id']}", expect=200)
    done = await member.run({"agent_id": aid})
    assert await sent_messages(db, done["task_id"]) == ["You are Bot for Acme Inc."]
    accepted = await member.call("POST", f"/v1/agents/{aid}/run", {}, expect=202)
    assert accepted["task_id"] and accepted["status"] == "running"
    await member.call("PATCH", f"/v1/agents/{aid}", {"name": "x"}, expect=403)
    await member.call("DELETE", f"/v1/agents/{aid}", expect=403)
    # The member sees their own executions; the admin has none.
    mine = await member.call("GET", f"/v1/agents/{aid}/executions", expect=200)
    assert len(mine["items"]) == 2
    assert (await admin.call("GET", f"/v1/agents/{aid}/executions", expect=200))["items"] == []

    for method, path, payload in (
        ("GET", f"/v1/agents/{aid}", None),
        ("PATCH", f"/v1/agents/{aid}", {"name": "x"}),
        ("DELETE", f"/v1/agents/{aid}", None),
        ("GET", f"/v1/agents/{aid}/executions", None),
        ("GET", f"/v1/agent-templates/{template['id']}", None),
    ):
        status, answer = await outsider.call(method, path, payload)
        assert status == 404 and answer["error"]["code"] == "not_found", (method, path)
    assert (await outsider.execute({"agent_id": aid}))["error"]["code"] == "not_found"
    assert (await outsider.call("GET", "/v1/agents", expect=200))["items"] == []
    assert (await outsider.call("GET", "/v1/agent-templates", expect=200))["items"] == []


async def test_counters_are_exact_under_concurrent_runs(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    admin, member = [await api_for(http, server) for _ in range(2)]
    org = (await admin.call("POST", "/v1/orgs", {"name": "Acme"}, expect=201))["id"]
    await join(admin, member, "org", org)
    template = await admin.call("POST", "/v1/agent-templates", {**TEMPLATE, "org_id": org}, 201)
    body = {
        "template_id": template["id"],
        "name": "Busy",
        "variables": {"persona": "Busy", "company": "Acme"},
        "org_id": org,
    }
    aid = (await admin.call("POST", "/v1/agents", body, expect=201))["id"]
    runs = 6
    clients = [await server.client(api.key) for api in (admin, member)]
    acks = await asyncio.gather(
        *(
            clients[n % 2].call("execute", {"agent_id": aid, "settings": {"max_tokens": 3}})
            for n in range(runs)
        )
    )
    assert all(ack["ok"] for ack in acks), acks
    done = await asyncio.gather(
        *(clients[n % 2].wait_done(ack["task_id"]) for n, ack in enumerate(acks))
    )
    assert all(d["status"] == "completed" for d in done), done

    row = await db.fetchrow(
        "SELECT execution_count, total_execution_ms, last_executed_at FROM agents WHERE id = $1",
        uuid.UUID(aid),
    )
    tasks = await db.fetchrow(
        "SELECT sum(GREATEST(0, (extract(epoch FROM completed_at - started_at) * 1000)::bigint))"
        " AS ms, max(completed_at) AS last FROM ai_tasks WHERE agent_id = $1",
        uuid.UUID(aid),
    )
    assert row["execution_count"] == runs
    assert row["total_execution_ms"] == tasks["ms"]
    assert row["last_executed_at"] == tasks["last"]
    view = await member.call("GET", f"/v1/agents/{aid}", expect=200)
    assert view["execution_count"] == runs
    assert view["average_execution_ms"] == round(tasks["ms"] / runs)


async def test_an_agent_template_passes_its_tools_to_runs(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    owner = await api_for(http, server)
    lookup = {
        "name": "lookup_order",
        "description": "find an order",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
    }
    body = {**TEMPLATE, "tools": [lookup]}
    template = await owner.call("POST", "/v1/agent-templates", body, expect=201)
    assert [t["name"] for t in template["tools"]] == ["lookup_order"]
    agent = await owner.call(
        "POST",
        "/v1/agents",
        {"template_id": template["id"], "name": "Tools", "variables": {"persona": "P"}},
        expect=201,
    )
    values = {"company": "Acme"}

    async def offered(run: dict[str, Any]) -> list[str]:
        done = await owner.run({"agent_id": agent["id"], "variables": values, **run})
        request = await db.fetchval(
            "SELECT request FROM ai_tasks WHERE task_id = $1", uuid.UUID(done["task_id"])
        )
        return [t["name"] for t in json.loads(request)["settings"].get("tools", [])]

    assert await offered({}) == ["lookup_order"]
    own = {"name": "other_tool", "parameters": {"type": "object", "properties": {}}}
    assert await offered({"tools": [own]}) == ["other_tool"]  # the request's win


LOOKUP = {
    "name": "lookup_order",
    "description": "find an order",
    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
}
STATUS = {"name": "order_status", "parameters": {"type": "object", "properties": {}}}
TOOL_MODEL = "openai/gpt-4o-mini:tokens=2:tools=2"  # asks for two tools, then answers
SYSTEM = {"role": "system", "content": "You are P for Acme."}


async def _tool_agent(owner: Any, model: str = TOOL_MODEL, **agent: Any) -> str:
    body = {**TEMPLATE, "model": model, "settings": {}, "tools": [LOOKUP, STATUS]}
    template = await owner.call("POST", "/v1/agent-templates", body, expect=201)
    values = {"persona": "P", "company": "Acme"}
    new = {"template_id": template["id"], "name": "Tools", "variables": values, **agent}
    return str((await owner.call("POST", "/v1/agents", new, expect=201))["id"])


def _ask(text: str, aid: str, **extra: Any) -> dict[str, Any]:
    return {"agent_id": aid, "messages": [{"role": "user", "content": text}], **extra}


async def _answer_tools(client: Any, done: dict[str, Any]) -> dict[str, Any]:
    """Post every call's result and wait for the continuation's task_done."""
    await client.call("subscribe", {"task_id": done["next_task_id"], "after_seq": 0})
    for call in done["tool_calls"]:
        ack = await client.call(
            "tool_result",
            {"task_id": done["task_id"], "call_id": call["id"], "output": f"r-{call['name']}"},
        )
        assert ack["ok"], ack
    final: dict[str, Any] = await client.wait_done(done["next_task_id"])
    return final


async def _span_ms(db: asyncpg.Connection, first: str, last: str) -> int:
    """Milliseconds from the first step's start to the last step's end, as SQL rounds them."""
    ms: int = await db.fetchval(
        "SELECT GREATEST(0, (extract(epoch FROM l.completed_at - f.started_at) * 1000)::bigint)"
        " FROM ai_tasks f, ai_tasks l WHERE f.task_id = $1 AND l.task_id = $2",
        uuid.UUID(first),
        uuid.UUID(last),
    )
    return ms


async def test_an_execution_covers_its_tool_continuations(
    settings: Settings, http: aiohttp.ClientSession
) -> None:
    async with fakes() as f, provider_server(settings, f) as srv:
        owner = await api_for(http, srv)
        aid = await _tool_agent(owner)
        client = await srv.client(owner.key)
        ack = await client.call("execute", _ask("Where is order 7?", aid))
        first = await client.wait_done(ack["task_id"])
        assert first["finish_reason"] == "tool_calls", first
        # the template's tools reached the provider, after the agent's system prompt
        assert [t["function"]["name"] for t in f.openai.requests[0]["tools"]] == [
            "lookup_order",
            "order_status",
        ]
        page = await owner.call("GET", f"/v1/agents/{aid}/executions", expect=200)
        [waiting] = page["items"]
        assert waiting["task_id"] == ack["task_id"] and waiting["status"] == "running"
        assert waiting["completed_at"] is None and waiting["execution_ms"] is None
        assert waiting["model_calls"] == 1
        assert (await owner.call("GET", f"/v1/agents/{aid}", expect=200))["execution_count"] == 0

        final = await _answer_tools(client, first)
        assert final["status"] == "completed" and final["finish_reason"] == "stop", final
        assert len(f.openai.requests) == 2
        for request in f.openai.requests:
            assert request["messages"][0] == SYSTEM
            offered = [t["function"]["name"] for t in request["tools"]]
            assert offered == ["lookup_order", "order_status"]
            assert [m["role"] for m in request["messages"]].count("system") == 1

        db = await asyncpg.connect(srv.settings.database_url)
        try:
            page = await owner.call("GET", f"/v1/agents/{aid}/executions", expect=200)
            [execution] = page["items"]  # one execution: the continuation is part of it
            assert execution["task_id"] == ack["task_id"]
            assert execution["status"] == "completed" and execution["error"] is None
            assert execution["model_calls"] == 2
            assert execution["tools_called"] == [c["name"] for c in first["tool_calls"]]
            assert execution["tools_called"] == ["lookup_order", "order_status"]
            used = first["usage"]["total_tokens"] + final["usage"]["total_tokens"]
            assert execution["tokens_used"] == used
            assert execution["result"] == final["text"] and final["text"]
            ended = await db.fetchval(
                "SELECT completed_at FROM ai_tasks WHERE task_id = $1",
                uuid.UUID(final["task_id"]),
            )
            assert execution["completed_at"] == ended.isoformat()
            span = await _span_ms(db, ack["task_id"], final["task_id"])
            assert execution["execution_ms"] == span
            agent = await owner.call("GET", f"/v1/agents/{aid}", expect=200)
            assert agent["execution_count"] == 1 and agent["average_execution_ms"] == span
            assert agent["last_executed_at"] == ended.isoformat()
        finally:
            await db.close()


async def test_an_execution_whose_tool_result_never_comes_fails_with_the_timeout(
    settings: Settings, http: aiohttp.ClientSession
) -> None:
    async with fakes() as f, provider_server(settings, f, tool_result_timeout_s=0.5) as srv:
        owner = await api_for(http, srv)
        aid = await _tool_agent(owner)
        client = await srv.client(owner.key)
        ack = await client.call("execute", _ask("Where is order 7?", aid))
        first = await client.wait_done(ack["task_id"])
        await client.call("subscribe", {"task_id": first["next_task_id"], "after_seq": 0})
        final = await client.wait_done(first["next_task_id"])
        assert final["status"] == "failed" and final["error"]["code"] == "timeout", final
        [execution] = (await owner.call("GET", f"/v1/agents/{aid}/executions", expect=200))["items"]
        assert execution["task_id"] == ack["task_id"] and execution["status"] == "failed"
        assert execution["error"]["code"] == "timeout"
        assert execution["model_calls"] == 1 and len(execution["tools_called"]) == 2
        assert execution["completed_at"] and execution["execution_ms"] is not None
        agent = await owner.call("GET", f"/v1/agents/{aid}", expect=200)
        assert agent["execution_count"] == 1
        assert agent["average_execution_ms"] == execution["execution_ms"]


async def test_counters_are_exact_with_tool_runs_on_two_nodes(
    settings: Settings, http: aiohttp.ClientSession
) -> None:
    async with fakes() as f:
        nodes = [await start_server(provider_settings(settings, f)) for _ in range(2)]
        try:
            admin, member = [await api_for(http, node) for node in nodes]
            org = (await admin.call("POST", "/v1/orgs", {"name": "Acme"}, expect=201))["id"]
            await join(admin, member, "org", org)
            aid = await _tool_agent(admin, org_id=org)
            clients = [await nodes[n].client(api.key) for n, api in enumerate((admin, member))]
            runs = 8

            async def one(n: int) -> tuple[str, str]:
                client = clients[n % 2]
                # every other run answers without tools (the fake asks none of this model)
                extra = {} if n % 4 < 2 else {"model": "openai/gpt-4o-mini:tokens=3"}
                ack = await client.call("execute", _ask(f"order {n}", aid, **extra))
                assert ack["ok"], ack
                done = await client.wait_done(ack["task_id"])
                if done["finish_reason"] == "tool_calls":
                    done = await _answer_tools(client, done)
                assert done["status"] == "completed", done
                return ack["task_id"], done["task_id"]

            pairs = await asyncio.gather(*(one(n) for n in range(runs)))
            assert sum(first != last for first, last in pairs) == runs // 2
            db = await asyncpg.connect(settings.database_url)
            try:
                spans = [await _span_ms(db, first, last) for first, last in pairs]
                row = await db.fetchrow(
                    "SELECT execution_count, total_execution_ms, last_executed_at"
                    " FROM agents WHERE id = $1",
                    uuid.UUID(aid),
                )
                last = await db.fetchval(
                    "SELECT max(completed_at) FROM ai_tasks WHERE task_id = ANY($1::uuid[])",
                    [uuid.UUID(last) for _, last in pairs],
                )
            finally:
                await db.close()
            assert row["execution_count"] == runs
            assert row["total_execution_ms"] == sum(spans)
            assert row["last_executed_at"] == last
            view = await member.call("GET", f"/v1/agents/{aid}", expect=200)
            assert view["average_execution_ms"] == round(sum(spans) / runs)
            mine = await member.call("GET", f"/v1/agents/{aid}/executions", expect=200)
            assert sorted(e["task_id"] for e in mine["items"]) == sorted(
                first for n, (first, _) in enumerate(pairs) if n % 2
            )
            assert {e["model_calls"] for e in mine["items"]} == {1, 2}
        finally:
            for node in nodes:
                await stop_server(node)


async def test_the_system_prompt_leads_every_call_in_an_existing_run(
    settings: Settings, http: aiohttp.ClientSession
) -> None:
    async with fakes() as f, provider_server(settings, f) as srv:
        owner = await api_for(http, srv)
        aid = await _tool_agent(owner, model="openai/gpt-4o-mini:tokens=2")
        client = await srv.client(owner.key)

        async def turn(body: dict[str, Any]) -> dict[str, Any]:
            ack = await client.call("execute", body)
            assert ack["ok"], ack
            done: dict[str, Any] = await client.wait_done(ack["task_id"])
            if done["finish_reason"] == "tool_calls":
                done = await _answer_tools(client, done)
            assert done["status"] == "completed", done
            return done

        def sent() -> list[dict[str, Any]]:
            messages: list[dict[str, Any]] = f.openai.requests[-1]["messages"]
            assert [m["role"] for m in messages].count("system") == 1, messages
            return messages

        run_id = (await turn(_ask("first", aid)))["run_id"]
        await turn(_ask("second", aid, run_id=run_id))
        assert sent()[0] == SYSTEM
        assert [m["content"] for m in sent() if m["role"] == "user"] == ["first", "second"]
        # the agent's values changed: the new render leads, the old one is not sent
        await owner.call(
            "PATCH", f"/v1/agents/{aid}", {"variables": {"persona": "Q", "company": "Acme"}}, 200
        )
        await turn(_ask("third", aid, run_id=run_id))
        assert sent()[0] == {"role": "system", "content": "You are Q for Acme."}
        # a tool step in the existing run: both of its calls lead with it
        calls = len(f.openai.requests)
        await turn(_ask("fourth", aid, run_id=run_id, model=TOOL_MODEL))
        assert len(f.openai.requests) == calls + 2
        for request in f.openai.requests[calls:]:
            assert request["messages"][0] == {"role": "system", "content": "You are Q for Acme."}
            assert [m["role"] for m in request["messages"]].count("system") == 1
        stored = await fetch(srv, "SELECT messages FROM ai_runs WHERE id = $1", uuid.UUID(run_id))
        roles = [m["role"] for m in json.loads(stored[0]["messages"])]
        assert roles.count("system") == 1 and roles[0] == "system"  # stored once, at the start

        # a run another conversation started: the agent's prompt leads it from its first turn
        plain = {
            "model": "openai/gpt-4o-mini:tokens=2",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello"},
            ],
        }
        other = (await turn(plain))["run_id"]
        await turn(_ask("now the agent", aid, run_id=other))
        assert sent()[0] == {"role": "system", "content": "You are Q for Acme."}
        assert [m["content"] for m in sent() if m["role"] == "user"] == ["hello", "now the agent"]
