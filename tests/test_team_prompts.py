"""Team prompt libraries: prompts owned by an org or a project. Members read and run them,
admins write them, anyone else gets `not_found`; a removed member loses access at once while
a task of theirs that already runs finishes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import Server
from tests.library_helpers import Api, api_for, db, prompt_body, sent_messages

__all__ = ["db"]  # fixture


async def join(admin: Api, member: Api, kind: str, target: str, role: str = "member") -> None:
    """`admin` invites `member` to an org or project, and `member` accepts."""
    body = {"user_id": str(member.user_id), "role": role}
    await admin.call("POST", f"/v1/{kind}s/{target}/members", body, expect=202)
    invitations = (await member.call("GET", "/v1/me/invitations", expect=200))["items"]
    mine = next(i for i in invitations if i["target_id"] == target)
    await member.call("POST", f"/v1/invitations/{mine['id']}/accept", expect=200)


async def team(http: aiohttp.ClientSession, server: Server) -> dict[str, Any]:
    """An org with an admin, a member and a second admin; a project with its own member."""
    admin, member, coadmin, project_member, outsider = [
        await api_for(http, server) for _ in range(5)
    ]
    org = (await admin.call("POST", "/v1/orgs", {"name": "Acme"}, expect=201))["id"]
    project = (await admin.call("POST", f"/v1/orgs/{org}/projects", {"name": "Docs"}, expect=201))[
        "id"
    ]
    await join(admin, member, "org", org)
    await join(admin, coadmin, "org", org, "admin")
    await join(admin, project_member, "project", project)
    return {
        "admin": admin,
        "member": member,
        "coadmin": coadmin,
        "project_member": project_member,
        "outsider": outsider,
        "org": org,
        "project": project,
    }


async def test_members_run_admins_write_others_not_found(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    t = await team(http, server)
    admin, member, coadmin, outsider = t["admin"], t["member"], t["coadmin"], t["outsider"]
    org = t["org"]
    await admin.call("PUT", f"/v1/orgs/{org}/variables/persona", {"value": "Acme's guide"}, 200)
    body = prompt_body(org_id=org, tags=["docs", "team"])
    # Only an admin of the org creates its prompts; an outsider does not even see the org.
    await member.call("POST", "/v1/prompts", body, expect=403)
    await outsider.call("POST", "/v1/prompts", body, expect=404)
    both = prompt_body(org_id=org, project_id=t["project"])
    await admin.call("POST", "/v1/prompts", both, expect=400)
    created = await admin.call("POST", "/v1/prompts", body, expect=201)
    pid = created["id"]
    assert created["org_id"] == org and created["project_id"] is None
    assert created["role"] == "admin"
    await coadmin.call("POST", f"/v1/prompts/{pid}/versions/1/publish", expect=200)

    # A member reads and runs it, with the org's variables without naming a scope.
    seen = await member.call("GET", f"/v1/prompts/{pid}", expect=200)
    assert seen["role"] == "member"
    await member.call("GET", f"/v1/prompts/{pid}/versions", expect=200)
    done = await member.run({"prompt_id": pid, "variables": {"topic": "tides"}})
    assert done["status"] == "completed", done
    messages = await sent_messages(db, done["task_id"])
    assert messages[0] == "You are Acme's guide."
    await member.call("GET", f"/v1/prompts/{pid}/stats", expect=200)

    # A member does not write it.
    await member.call("PATCH", f"/v1/prompts/{pid}", {"change_log": "x"}, expect=403)
    await member.call("POST", f"/v1/prompts/{pid}/versions/1/publish", expect=403)
    await member.call("POST", f"/v1/prompts/{pid}/archive", expect=403)
    await member.call("DELETE", f"/v1/prompts/{pid}", expect=403)
    assert (await coadmin.call("PATCH", f"/v1/prompts/{pid}", {"change_log": "y"}, 200))[
        "version"
    ] == 2

    # Anyone else: exactly the answer for a prompt that does not exist.
    for method, path, payload in (
        ("GET", "", None),
        ("PATCH", "", {"change_log": "x"}),
        ("DELETE", "", None),
        ("GET", "/versions", None),
        ("GET", "/versions/1", None),
        ("POST", "/versions/1/publish", None),
        ("POST", "/archive", None),
        ("GET", "/stats", None),
    ):
        status, answer = await outsider.call(method, f"/v1/prompts/{pid}{path}", payload)
        assert status == 404 and answer["error"]["code"] == "not_found", (method, path)
    failed = await outsider.execute({"prompt_id": pid, "variables": {"topic": "x"}})
    assert failed["error"]["code"] == "not_found"
    assert (await outsider.call("GET", "/v1/prompts", expect=200))["items"] == []
    await outsider.call("GET", f"/v1/prompts?owner=org:{org}", expect=200)


async def test_project_prompts_and_the_lists(server: Server, http: aiohttp.ClientSession) -> None:
    t = await team(http, server)
    admin, member, project_member = t["admin"], t["member"], t["project_member"]
    org, project = t["org"], t["project"]
    mine = await member.call("POST", "/v1/prompts", prompt_body(name="Mine"), expect=201)
    assert mine["org_id"] is None and mine["project_id"] is None and mine["role"] == "admin"
    org_prompts = [
        await admin.call("POST", "/v1/prompts", prompt_body(name=f"Org {n}", org_id=org), 201)
        for n in range(3)
    ]
    in_project = await admin.call(
        "POST", "/v1/prompts", prompt_body(name="Proj", project_id=project, tags=["p"]), 201
    )
    # A project member reads and runs the project's prompt, not the org's (not a member).
    seen = await project_member.call("GET", f"/v1/prompts/{in_project['id']}", expect=200)
    assert seen["role"] == "member" and seen["project_id"] == project
    await project_member.call("GET", f"/v1/prompts/{org_prompts[0]['id']}", expect=404)
    await project_member.call("POST", "/v1/prompts", prompt_body(project_id=project), 403)
    # An org member who is not in the project does not see it; the org admin writes it.
    await member.call("GET", f"/v1/prompts/{in_project['id']}", expect=404)
    await admin.call("POST", f"/v1/prompts/{in_project['id']}/archive", expect=200)

    everything = await member.call("GET", "/v1/prompts", expect=200)
    assert [p["name"] for p in everything["items"]] == ["Org 2", "Org 1", "Org 0", "Mine"]
    only_mine = await member.call("GET", "/v1/prompts?owner=me", expect=200)
    assert [p["name"] for p in only_mine["items"]] == ["Mine"]
    page = await member.call("GET", f"/v1/prompts?owner=org:{org}&limit=2", expect=200)
    assert [p["name"] for p in page["items"]] == ["Org 2", "Org 1"]
    rest = await member.call(
        "GET", f"/v1/prompts?owner=org:{org}&limit=2&cursor={page['next_cursor']}", expect=200
    )
    assert [p["name"] for p in rest["items"]] == ["Org 0"] and rest["next_cursor"] is None
    searched = await member.call("GET", "/v1/prompts?q=org 1", expect=200)
    assert [p["name"] for p in searched["items"]] == ["Org 1"]
    projects = await project_member.call(
        "GET", f"/v1/prompts?owner=project:{project}&tag=p&status=archived", expect=200
    )
    assert [p["name"] for p in projects["items"]] == ["Proj"]
    status, bad = await member.call("GET", "/v1/prompts?owner=team:x")
    assert status == 400 and bad["error"]["details"]["errors"][0]["field"] == "owner"


async def test_a_removed_member_loses_access_but_a_running_task_finishes(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    t = await team(http, server)
    admin, member, org = t["admin"], t["member"], t["org"]
    other = await api_for(http, server)
    await join(admin, other, "org", org)
    await member.call("DELETE", f"/v1/orgs/{org}/members/{other.user_id}", expect=403)
    slow = {"max_tokens": 40, "tokens_per_second": 20}
    created = await admin.call("POST", "/v1/prompts", prompt_body(org_id=org, settings=slow), 201)
    pid = created["id"]
    await admin.call("POST", f"/v1/prompts/{pid}/versions/1/publish", expect=200)
    client = await server.client(member.key)
    ack = await client.call("execute", {"prompt_id": pid, "variables": {"topic": "tides"}})
    assert ack["ok"], ack
    task_id = uuid.UUID(ack["task_id"])
    await asyncio.sleep(0.2)
    status = await db.fetchval("SELECT status FROM ai_tasks WHERE task_id = $1", task_id)
    assert status in ("queued", "running"), status  # under way when the member is removed

    # Only an admin removes another member; the last admin stays.
    coadmin, outsider = t["coadmin"], t["outsider"]
    await coadmin.call("DELETE", f"/v1/orgs/{org}/members/{member.user_id}", expect=204)
    await member.call("GET", f"/v1/prompts/{pid}", expect=404)
    assert (await member.call("GET", "/v1/prompts", expect=200))["items"] == []
    again = await member.execute({"prompt_id": pid, "variables": {"topic": "x"}})
    assert again["error"]["code"] == "not_found"

    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "completed", done

    # Removing again, or by a user who is no longer in the org: not found.
    await coadmin.call("DELETE", f"/v1/orgs/{org}/members/{member.user_id}", expect=404)
    await member.call("DELETE", f"/v1/orgs/{org}/members/{other.user_id}", expect=404)
    await outsider.call("DELETE", f"/v1/orgs/{org}/members/{other.user_id}", expect=404)
    # A member leaves on their own; the org's last admin cannot be removed.
    await other.call("DELETE", f"/v1/orgs/{org}/members/{other.user_id}", expect=204)
    await admin.call("DELETE", f"/v1/orgs/{org}/members/{coadmin.user_id}", expect=204)
    status, refused = await admin.call("DELETE", f"/v1/orgs/{org}/members/{admin.user_id}")
    assert status == 400 and refused["error"]["details"]["errors"][0]["field"] == "user_id"

    # A removed project member loses the project's prompts the same way.
    project, project_member = t["project"], t["project_member"]
    in_project = await admin.call("POST", "/v1/prompts", prompt_body(project_id=project), 201)
    await project_member.call("GET", f"/v1/prompts/{in_project['id']}", expect=200)
    path = f"/v1/projects/{project}/members/{project_member.user_id}"
    await admin.call("DELETE", path, expect=204)
    await project_member.call("GET", f"/v1/prompts/{in_project['id']}", expect=404)
    await project_member.call("DELETE", path, expect=404)
