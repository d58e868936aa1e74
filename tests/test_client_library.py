"""The Python client's library and agent routes (promptrelay_client.Library) against a real
server: prompts (mine, an org's, filters, paging), the template gallery (publish, search,
tags, fork, stats, unpublish) and agents (create, list, update, run and stream, executions,
delete), with the server's error codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from promptrelay_client import Client, Library, PromptrelayError, each_item
from tests.conftest import Server

SIM = {"max_tokens": 4, "tokens_per_second": 0}


def prompt(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} for the client tests",
        "messages": [{"role": "user", "content": "Review {{code}}"}],
        "model": "simulated/demo",
        "settings": SIM,
        **extra,
    }


@pytest_asyncio.fixture
async def owner(server: Server) -> AsyncIterator[Library]:
    async with Library(server.url, await server.new_key()) as lib:
        yield lib


@pytest_asyncio.fixture
async def member(server: Server, owner: Library) -> AsyncIterator[tuple[Library, str]]:
    """Another user (with an async token provider), member of an org of `owner`'s."""
    key = await server.new_key()

    async def token() -> str:
        return key

    async with Library(server.url, token) as lib:
        org = (await owner.create_org("Acme"))["id"]
        me = await lib.request("GET", "/v1/me")
        await owner.request("POST", f"/v1/orgs/{org}/members", {"user_id": me["id"]})
        invitation = (await lib.request("GET", "/v1/me/invitations"))["items"][0]
        await lib.request("POST", f"/v1/invitations/{invitation['id']}/accept")
        yield lib, org


async def test_prompts_mine_and_the_teams_filtered_and_paged(
    owner: Library, member: tuple[Library, str]
) -> None:
    other, org = member
    review = await owner.create_prompt(prompt("Code review helper", tags=["code"]))
    notes = await owner.create_prompt(prompt("Meeting notes", tags=["writing"]))
    team = await owner.create_prompt(prompt("Team digest", org_id=org))

    mine = await owner.list_prompts(owner="me")
    assert sorted(p["id"] for p in mine["items"]) == sorted([review["id"], notes["id"]])
    theirs = await other.list_prompts(owner=f"org:{org}")
    assert [(p["id"], p["role"]) for p in theirs["items"]] == [(team["id"], "member")]
    assert [p["id"] for p in (await owner.list_prompts(tag="writing"))["items"]] == [notes["id"]]
    assert [p["id"] for p in (await owner.list_prompts(q="review"))["items"]] == [review["id"]]
    await owner.publish_prompt(notes["id"], 1)
    published = await owner.list_prompts(status="published")
    assert [p["id"] for p in published["items"]] == [notes["id"]]

    first = await owner.list_prompts(limit=1)
    assert len(first["items"]) == 1 and isinstance(first["next_cursor"], str)
    walked = [p["id"] async for p in each_item(lambda c: owner.list_prompts(limit=1, cursor=c))]
    assert walked == [team["id"], notes["id"], review["id"]]

    with pytest.raises(PromptrelayError) as raised:
        await owner.list_prompts(limit=500)
    assert raised.value.code == "invalid_request"
    with pytest.raises(PromptrelayError) as raised:
        await other.get_prompt(review["id"])
    assert raised.value.code == "not_found"


async def test_templates_publish_search_fork_unpublish(
    owner: Library, member: tuple[Library, str]
) -> None:
    other, _org = member
    review = await owner.create_prompt(prompt("Code review helper", tags=["code", "review"]))
    stats = await owner.publish_template(review["id"], 1, category="engineering")
    assert stats["is_public"] is True and stats["fork_count"] == 0

    found = await other.list_templates(q="review helper")
    assert [t["id"] for t in found["items"]] == [stats["id"]]
    assert [t["id"] for t in (await other.list_templates(tag="code"))["items"]] == [stats["id"]]
    assert (await other.list_templates(tag="writing"))["items"] == []
    assert (await other.get_template(stats["id"]))["category"] == "engineering"

    fork = await other.fork_template(stats["id"], name="My reviewer")
    assert fork["status"] == "draft" and fork["role"] == "admin"
    assert fork["forked_from"] == {"prompt_id": review["id"], "version": 1}
    assert (await owner.template_stats(review["id"]))["fork_count"] == 1
    with pytest.raises(PromptrelayError) as raised:
        await other.template_stats(review["id"])
    assert raised.value.code == "not_found"

    await owner.unpublish_template(review["id"])
    assert (await other.list_templates(q="review helper"))["items"] == []


async def test_agents_create_run_executions_delete(server: Server, owner: Library) -> None:
    template = await owner.create_agent_template(
        {
            "name": "Support",
            "system_prompt": "You answer for {{company}}.",
            "variables": [{"name": "company", "required": True}],
            "model": "simulated/demo",
            "settings": SIM,
        }
    )
    assert [t["id"] for t in (await owner.list_agent_templates())["items"]] == [template["id"]]
    agent = await owner.create_agent(
        {"template_id": template["id"], "name": "Helpdesk", "variables": {"company": "Acme"}}
    )
    assert [a["id"] for a in (await owner.list_agents())["items"]] == [agent["id"]]
    assert (await owner.update_agent(agent["id"], {"name": "Front desk"}))["name"] == "Front desk"

    started = await owner.run_agent(agent["id"], {"messages": [{"role": "user", "content": "Hi"}]})
    token = owner.token
    assert isinstance(token, str)
    async with Client(server.url, token) as client:
        done = await client.subscribe(started["task_id"]).done
    assert done["status"] == "completed" and done["text"]
    executions = await owner.list_agent_executions(agent["id"])
    assert [(e["task_id"], e["status"], e["result"]) for e in executions["items"]] == [
        (started["task_id"], "completed", done["text"])
    ]
    assert (await owner.get_agent(agent["id"]))["execution_count"] == 1

    await owner.delete_agent(agent["id"])
    with pytest.raises(PromptrelayError) as raised:
        await owner.get_agent(agent["id"])
    assert raised.value.code == "not_found"


async def test_a_library_not_opened_says_so(server: Server) -> None:
    lib = Library(server.url, "ps_x")
    with pytest.raises(PromptrelayError) as raised:
        await lib.list_agents()
    assert raised.value.code == "client_closed"
