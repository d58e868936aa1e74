"""Smaller holes of hostile input: integer literals past Python's 4,300-digit limit, malformed
Socket.IO packets with an ack id, a foreign `scope` on an ad-hoc execute, malformed cursors
and URLs over 8 KB. Each gets a stable error code; none logs a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import aiohttp
import pytest

from tests.conftest import Server
from tests.library_helpers import api_for

HUGE = "1" * 5000  # an integer literal Python refuses to convert


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not logged, [r.getMessage() for r in logged]


async def post_raw(http: aiohttp.ClientSession, url: str, key: str, raw: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with http.post(url, data=raw, headers=headers) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("path", ["/v1/executions", "/v1/prompts", "/v1/keys", "/v1/orgs"])
async def test_huge_integer_literals_are_invalid_request_on_json_routes(
    server: Server, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    key = await server.new_key()
    status, body = await post_raw(http, server.url + path, key, f'{{"name": {HUGE}}}')
    assert status == 400 and body["error"]["code"] == "invalid_request", body
    no_tracebacks(caplog)


class RawSocket:
    """Engine.IO v4 over a websocket, written by hand: packets no client library sends."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def recv(self) -> str:
        while True:
            msg = await asyncio.wait_for(self.ws.receive_str(), 10)
            if msg == "2":  # Engine.IO ping
                await self.ws.send_str("3")
                continue
            return msg

    async def ack(self, raw: str, ack_id: int) -> Any:
        """Send `raw` and return the data of the ack with `ack_id`."""
        await self.ws.send_str(raw)
        while True:
            msg = await self.recv()
            if msg.startswith(f"43{ack_id}["):
                return json.loads(msg[len(f"43{ack_id}") :])[0]


async def raw_socket(http: aiohttp.ClientSession, server: Server, key: str) -> RawSocket:
    ws = await http.ws_connect(
        server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    )
    sock = RawSocket(ws)
    assert (await sock.recv()).startswith("0{")
    await ws.send_str("40" + json.dumps({"token": key}))
    assert (await sock.recv()).startswith("40{")
    return sock


async def test_malformed_packets_with_an_ack_id_get_an_error_ack(
    server: Server, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    sock = await raw_socket(http, server, await server.new_key())
    huge = await sock.ack(f'421["execute",{{"messages":[],"settings":{{"seed":{HUGE}}}}}]', 1)
    assert huge["ok"] is False and huge["error"]["code"] == "invalid_request"
    for ack_id, raw in [
        (2, '422["execute",{"messages":'),  # cut JSON
        (3, "423{not json}"),
        (4, '424["execute"'),
        (5, f"425[{HUGE}]"),
    ]:
        answer = await sock.ack(raw, ack_id)
        assert answer == {
            "ok": False,
            "error": {"code": "invalid_request", "message": "malformed packet"},
        }, raw
    await sock.ws.send_str("49zz")  # no ack id: nothing to answer, nothing logged
    # The connection still serves.
    task = str(uuid.uuid4())
    assert (await sock.ack(f'426["unsubscribe",{{"task_id":"{task}"}}]', 6)) == {"ok": True}
    await sock.ws.close()
    # Not even Engine.IO framing: the connection is dropped, with no traceback either.
    garbage = await raw_socket(http, server, await server.new_key())
    await garbage.ws.send_str("9zz")
    await asyncio.wait_for(garbage.ws.receive(), 10)
    no_tracebacks(caplog)


async def test_a_foreign_or_unknown_scope_is_not_found_on_an_ad_hoc_execute(
    server: Server, http: aiohttp.ClientSession
) -> None:
    owner, stranger = await server.new_key(), await server.new_key()
    async with http.post(
        f"{server.url}/v1/orgs", json={"name": "mine"}, headers={"Authorization": f"Bearer {owner}"}
    ) as resp:
        org_id = (await resp.json())["id"]
    client = await server.client(stranger)
    answers = []
    for scope in ({"org_id": org_id}, {"org_id": str(uuid.uuid4())}, {"project_id": org_id}):
        body = {"messages": [{"role": "user", "content": "hi"}], "scope": scope}
        ack = await client.call("execute", body)
        assert ack["ok"] is False and ack["error"]["code"] == "not_found", ack
        answers.append(ack["error"]["code"])
    assert len(set(answers)) == 1
    mine = await server.client(owner)
    body = {"messages": [{"role": "user", "content": "hi"}], "scope": {"org_id": org_id}}
    assert (await mine.call("execute", body))["ok"]


@pytest.mark.parametrize("cursor", ["!!!", "YQ=", "a", "%25%25", "AAAA", "_w"])
async def test_malformed_cursors_are_refused(
    server: Server, http: aiohttp.ClientSession, cursor: str
) -> None:
    key = await server.new_key()
    async with http.get(
        f"{server.url}/v1/me/variables?cursor={cursor}",
        headers={"Authorization": f"Bearer {key}"},
    ) as resp:
        body = await resp.json()
        assert resp.status == 400 and body["error"]["code"] == "invalid_request", (cursor, body)


@pytest.mark.parametrize("size", [9_000, 40_000])
async def test_long_urls_are_answered_in_json_without_echo(
    server: Server, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, size: int
) -> None:
    marker = "q" * size
    async with http.get(f"{server.url}/v1/me?x={marker}") as resp:
        text = await resp.text()
        assert resp.status == 414 and resp.content_type == "application/json", text[:200]
    assert json.loads(text)["error"]["code"] == "invalid_request"
    assert "qqqqqqqq" not in text
    no_tracebacks(caplog)
    logging.getLogger(__name__).info("long URL answered")


async def test_org_membership_is_by_invitation_the_invited_user_accepts(
    server: Server, http: aiohttp.ClientSession
) -> None:
    admin, invited, stranger = [await api_for(http, server) for _ in range(3)]
    org = (await admin.call("POST", "/v1/orgs", {"name": "Acme"}, expect=201))["id"]
    real = await admin.call(
        "POST", f"/v1/orgs/{org}/members", {"user_id": str(invited.user_id), "role": "member"}
    )
    ghost_id = str(uuid.uuid4())
    ghost = await admin.call(
        "POST", f"/v1/orgs/{org}/members", {"user_id": ghost_id, "role": "member"}
    )
    # The same answer whether the id is a user or not.
    assert real[0] == ghost[0] == 202
    assert {**real[1], "user_id": "x"} == {**ghost[1], "user_id": "x"}
    # Not a member without consent.
    await invited.call("GET", f"/v1/orgs/{org}/variables", expect=404)
    [invitation] = (await invited.call("GET", "/v1/me/invitations", expect=200))["items"]
    assert invitation["kind"] == "org" and invitation["name"] == "Acme"
    assert (await stranger.call("GET", "/v1/me/invitations", expect=200))["items"] == []
    theirs = await stranger.call("POST", f"/v1/invitations/{invitation['id']}/accept")
    unknown = await stranger.call("POST", f"/v1/invitations/{uuid.uuid4()}/accept")
    assert theirs == unknown and theirs[0] == 404
    accepted = await invited.call("POST", f"/v1/invitations/{invitation['id']}/accept", expect=200)
    assert accepted == {"kind": "org", "target_id": org, "role": "member"}
    await invited.call("GET", f"/v1/orgs/{org}/variables", expect=200)
    await invited.call("POST", f"/v1/invitations/{invitation['id']}/accept", expect=404)
