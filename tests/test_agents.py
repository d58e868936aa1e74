"""Agents: templates and instances, run as an `execute` with `agent_id`, their executions
tracked, and per-agent counters exact under concurrent runs (counted in SQL at finalize)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import Server
from tests.library_helpers import api_for, db, sent_messages
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
