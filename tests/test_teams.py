"""What a team UI lists: my orgs, an org's projects, members and pending invitations, paged,
members only (anyone else gets `not_found`); and every unmatched route or method answers in
the JSON error shape."""

from __future__ import annotations

from typing import Any

import aiohttp

from db import users
from db.pool import connect
from tests.conftest import Server


async def call(
    http: aiohttp.ClientSession, server: Server, key: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with http.request(method, server.url + path, json=body, headers=headers) as resp:
        assert resp.content_type == "application/json", (method, path, await resp.text())
        return resp.status, await resp.json()


async def user_id(server: Server, email: str) -> str:
    conn = await connect(server.settings.database_url or "")
    try:
        return str((await users.ensure_user(conn, email)).id)
    finally:
        await conn.close()


async def test_unmatched_routes_and_methods_answer_json(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    status, body = await call(http, server, key, "DELETE", "/v1/orgs")
    assert status == 405 and body["error"]["code"] == "method_not_allowed", body
    assert "POST" in body["error"]["details"]["allowed"]
    status, body = await call(http, server, key, "PUT", "/v1/executions")
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    status, body = await call(http, server, key, "GET", "/v1/nothing/here")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_a_team_ui_lists_orgs_projects_members_and_invitations(
    server: Server, http: aiohttp.ClientSession
) -> None:
    admin = await server.new_key("admin@team")
    outsider = await server.new_key("outsider@team")
    invited = await user_id(server, "invited@team")
    orgs = []
    for n in range(3):
        status, org = await call(http, server, admin, "POST", "/v1/orgs", {"name": f"org {n}"})
        assert status == 201
        orgs.append(org)
    org_id = orgs[0]["id"]
    for n in range(3):
        path = f"/v1/orgs/{org_id}/projects"
        assert (await call(http, server, admin, "POST", path, {"name": f"p{n}"}))[0] == 201
    invite = {"user_id": invited, "role": "member"}
    assert (await call(http, server, admin, "POST", f"/v1/orgs/{org_id}/members", invite))[0] == 202

    # my orgs, two to a page
    status, first = await call(http, server, admin, "GET", "/v1/orgs?limit=2")
    assert status == 200 and [o["name"] for o in first["items"]] == ["org 0", "org 1"]
    assert first["items"][0]["role"] == "admin" and first["next_cursor"]
    status, rest = await call(http, server, admin, "GET", f"/v1/orgs?cursor={first['next_cursor']}")
    assert [o["name"] for o in rest["items"]] == ["org 2"] and rest["next_cursor"] is None
    assert (await call(http, server, outsider, "GET", "/v1/orgs"))[1] == {
        "items": [],
        "next_cursor": None,
    }

    status, projects = await call(http, server, admin, "GET", f"/v1/orgs/{org_id}/projects?limit=2")
    assert status == 200 and [p["name"] for p in projects["items"]] == ["p0", "p1"]
    assert projects["items"][0]["org_id"] == org_id
    cursor = projects["next_cursor"]
    status, more = await call(
        http, server, admin, "GET", f"/v1/orgs/{org_id}/projects?cursor={cursor}"
    )
    assert [p["name"] for p in more["items"]] == ["p2"]

    status, members = await call(http, server, admin, "GET", f"/v1/orgs/{org_id}/members")
    assert status == 200
    assert [(m["email"], m["role"]) for m in members["items"]] == [("admin@team", "admin")]

    status, pending = await call(http, server, admin, "GET", f"/v1/orgs/{org_id}/invitations")
    assert status == 200 and len(pending["items"]) == 1
    item = pending["items"][0]
    assert (item["user_id"], item["email"], item["role"]) == (invited, "invited@team", "member")

    for what in ("projects", "members", "invitations"):
        path = f"/v1/orgs/{org_id}/{what}"
        status, body = await call(http, server, outsider, "GET", path)
        assert status == 404 and body["error"]["code"] == "not_found", (what, body)
        status, body = await call(http, server, admin, "GET", path + "?cursor=zz")
        assert status == 400 and body["error"]["code"] == "invalid_request"
