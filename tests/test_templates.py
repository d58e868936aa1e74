"""Public templates: publish a version to every user's gallery, one default per category,
fork into one's own or a team's library with provenance, counts for the author only."""

from __future__ import annotations

import uuid

import aiohttp
import asyncpg
import pytest

from tests.conftest import Server
from tests.library_helpers import api_for, db, prompt_body, sent_messages
from tests.test_team_prompts import join

__all__ = ["db"]  # fixture


async def test_publish_search_fork_and_count(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    author, reader, org_admin, org_member = [await api_for(http, server) for _ in range(4)]
    made = await author.call("POST", "/v1/prompts", prompt_body(tags=["docs", "edu"]), 201)
    pid = made["id"]
    published = await author.call(
        "POST", f"/v1/prompts/{pid}/versions/1/template", {"category": "teaching"}, 200
    )
    assert published["is_public"] and published["fork_count"] == 0
    assert published["run_count"] == 0 and published["version"] == 1

    # Every user sees it in the gallery, searched by name, tag and category.
    for query in ("", "?q=explain", "?tag=edu", "?category=teaching"):
        page = await reader.call("GET", f"/v1/templates{query}", expect=200)
        assert [t["id"] for t in page["items"]] == [pid], query
    for query in ("?q=nothing", "?tag=other", "?category=other"):
        assert (await reader.call("GET", f"/v1/templates{query}", expect=200))["items"] == []
    assert (await reader.call("GET", f"/v1/templates/{pid}", expect=200))["name"] == "Explainer"
    # The prompt itself stays its author's; the template's counts too.
    await reader.call("GET", f"/v1/prompts/{pid}", expect=404)
    await reader.call("GET", f"/v1/prompts/{pid}/template", expect=404)
    await reader.call("DELETE", f"/v1/prompts/{pid}/template", expect=404)
    await reader.call("POST", f"/v1/prompts/{pid}/versions/1/template", {}, expect=404)

    # Fork into one's own library, and into an org's (admins only).
    fork = await reader.call("POST", f"/v1/templates/{pid}/fork", {"name": "Mine"}, expect=201)
    assert fork["forked_from"] == {"prompt_id": pid, "version": 1}
    assert fork["name"] == "Mine" and fork["version"] == 1 and fork["role"] == "admin"
    assert fork["messages"] == made["messages"] and fork["status"] == "draft"
    org = (await org_admin.call("POST", "/v1/orgs", {"name": "Acme"}, expect=201))["id"]
    await join(org_admin, org_member, "org", org)
    await org_member.call("POST", f"/v1/templates/{pid}/fork", {"org_id": org}, expect=403)
    await reader.call("POST", f"/v1/templates/{pid}/fork", {"org_id": org}, expect=404)
    team_fork = await org_admin.call("POST", f"/v1/templates/{pid}/fork", {"org_id": org}, 201)
    assert team_fork["org_id"] == org
    await org_member.call("GET", f"/v1/prompts/{team_fork['id']}", expect=200)

    # Later versions of the template do not change forks.
    changed = {"messages": [{"role": "user", "content": "New {{topic}}"}], "change_log": "v2"}
    await author.call("PATCH", f"/v1/prompts/{pid}", changed, expect=200)
    await author.call("POST", f"/v1/prompts/{pid}/versions/2/template", {"category": "teaching"})
    assert (await reader.call("GET", f"/v1/templates/{pid}", expect=200))["version"] == 2
    done = await reader.run({"prompt_id": fork["id"], "version": 1, "variables": {"topic": "x"}})
    assert await sent_messages(db, done["task_id"]) == [
        "You are a teacher.",
        "Explain x in English.",
    ]

    counts = await author.call("GET", f"/v1/prompts/{pid}/template", expect=200)
    assert counts["fork_count"] == 2 and counts["run_count"] == 1

    # Only the owner unpublishes; then it is gone from the gallery, forks stay.
    await author.call("DELETE", f"/v1/prompts/{pid}/template", expect=204)
    assert (await reader.call("GET", "/v1/templates", expect=200))["items"] == []
    await reader.call("GET", f"/v1/templates/{pid}", expect=404)
    await reader.call("POST", f"/v1/templates/{pid}/fork", {}, expect=404)
    await reader.call("GET", f"/v1/prompts/{fork['id']}", expect=200)
    assert not (await author.call("GET", f"/v1/prompts/{pid}/template", expect=200))["is_public"]


async def test_one_default_per_category(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    first, second = [await api_for(http, server) for _ in range(2)]
    a = (await first.call("POST", "/v1/prompts", prompt_body(), 201))["id"]
    b = (await second.call("POST", "/v1/prompts", prompt_body(), 201))["id"]
    body = {"category": "writing", "is_default": True}
    made = await first.call("POST", f"/v1/prompts/{a}/versions/1/template", body, expect=200)
    assert made["is_default"]
    status, refused = await second.call("POST", f"/v1/prompts/{b}/versions/1/template", body)
    assert status == 400 and refused["error"]["details"]["errors"][0]["field"] == "is_default"
    other = {"category": "coding", "is_default": True}
    await second.call("POST", f"/v1/prompts/{b}/versions/1/template", other, expect=200)
    # The database refuses a second default even past the server.
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "UPDATE prompt_templates SET category = 'writing' WHERE prompt_id = $1",
            uuid.UUID(b),
        )
    # Unpublishing frees the category's default.
    await first.call("DELETE", f"/v1/prompts/{a}/template", expect=204)
    await second.call("POST", f"/v1/prompts/{b}/versions/1/template", body, expect=200)
