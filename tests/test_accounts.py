"""Account routes (/v1/me, /v1/keys, /v1/usage), the keys CLI, revocation that closes live
sockets on every node, and the per-user connection and per-socket event caps."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from engine.protocol import responses as events
from engine.redis_keys import RedisKeys
from engine.settings import Settings
from server.cli.main import main as cli_main
from server.realtime.sessions import _not_in, _Session
from tests.conftest import Client, Server, clear_of_midnight, start_server, stop_server
from tests.test_auth import connect_error

FAST = {"max_tokens": 3, "tokens_per_second": 0}


def adhoc(model: str = "simulated/acct") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "count me"}], "model": model, "settings": FAST}


async def call(
    http: aiohttp.ClientSession, method: str, url: str, key: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(
        method, url, headers={"Authorization": f"Bearer {key}"}, **kwargs
    ) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


async def run_to_end(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    ack = await client.call("execute", body)
    assert ack["ok"], ack
    return await client.wait_done(ack["task_id"])


async def wait_disconnected(client: Client, within_s: float) -> float:
    start = time.monotonic()
    while client.sio.connected:
        assert time.monotonic() - start < within_s, "socket still connected"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_me_reports_tier_limits_and_usage_today(
    server: Server, http: aiohttp.ClientSession
) -> None:
    await clear_of_midnight()
    key = await server.new_key("me@test")
    client = await server.client(key)
    await run_to_end(client, adhoc())
    status, me = await call(http, "GET", server.url + "/v1/me", key)
    assert status == 200, me
    events.Me.model_validate(me)
    assert me["email"] == "me@test" and me["tier"] == "free"
    assert me["limits"]["daily"] is None  # the test settings make free unlimited
    assert me["usage_today"]["tasks_today"] == 1
    assert me["usage_today"]["day"] == datetime.now(UTC).date().isoformat()


async def test_keys_create_list_revoke(server: Server, http: aiohttp.ClientSession) -> None:
    key = await server.new_key("keys@test")
    status, new = await call(http, "POST", server.url + "/v1/keys", key, json={"name": "ci"})
    assert status == 201 and new["key"].startswith(new["prefix"]) and new["name"] == "ci"
    events.KeyCreated.model_validate(new)
    # the new key works and its use is recorded
    assert (await call(http, "GET", server.url + "/v1/me", new["key"]))[0] == 200
    status, page = await call(http, "GET", server.url + "/v1/keys", key)
    assert status == 200 and page["next_cursor"] is None
    events.KeyList.model_validate(page)
    listed = {k["id"]: k for k in page["items"]}
    assert set(listed) >= {new["id"]} and len(listed) == 2
    assert listed[new["id"]]["last_used_at"] is not None
    for item in page["items"]:
        assert set(item) == {"id", "name", "prefix", "created_at", "last_used_at", "revoked_at"}
    assert new["key"] not in str(page)
    status, page1 = await call(http, "GET", server.url + "/v1/keys?limit=1", key)
    assert len(page1["items"]) == 1 and page1["next_cursor"] == "1"
    status, page2 = await call(http, "GET", server.url + "/v1/keys?limit=1&cursor=1", key)
    assert len(page2["items"]) == 1 and page2["next_cursor"] is None
    assert page1["items"][0]["id"] != page2["items"][0]["id"]
    status, body = await call(http, "GET", server.url + "/v1/keys?limit=500", key)
    assert status == 400 and body["error"]["code"] == "invalid_request"
    status, _ = await call(http, "DELETE", f"{server.url}/v1/keys/{new['id']}", key)
    assert status == 204
    status, body = await call(http, "GET", server.url + "/v1/me", new["key"])
    assert status == 401 and body["error"]["code"] == "unauthorized"
    # revoking again, an unknown id, or a malformed one: not_found
    for kid in (new["id"], str(uuid.uuid4()), "nope"):
        status, body = await call(http, "DELETE", f"{server.url}/v1/keys/{kid}", key)
        assert status == 404 and body["error"]["code"] == "not_found"


async def test_usage_by_day_and_model(server: Server, http: aiohttp.ClientSession) -> None:
    await clear_of_midnight()
    key = await server.new_key("usage@test")
    client = await server.client(key)
    for model in ("simulated/a", "simulated/a", "simulated/b"):
        await run_to_end(client, adhoc(model))
    today = datetime.now(UTC).date()
    status, body = await call(http, "GET", f"{server.url}/v1/usage?from={today}&to={today}", key)
    assert status == 200, body
    events.UsageList.model_validate(body)
    by_model = {i["model"]: i for i in body["items"]}
    assert set(by_model) == {"a", "b"}
    assert by_model["a"]["tasks"] == 2 and by_model["b"]["tasks"] == 1
    assert by_model["a"]["output_tokens"] == 6 and by_model["a"]["cost_usd"] == "0"
    assert all(
        i["day"] == today.isoformat() and i["provider"] == "simulated" for i in body["items"]
    )
    yesterday = today - timedelta(days=1)
    status, body = await call(http, "GET", f"{server.url}/v1/usage?to={yesterday}", key)
    assert status == 200 and body["items"] == []
    # another user sees none of it
    other = await server.new_key("usage2@test")
    assert (await call(http, "GET", f"{server.url}/v1/usage", other))[1]["items"] == []
    for query in ("from=2026-13-01", f"from={today}&to={yesterday}", "from=2000-01-01"):
        status, body = await call(http, "GET", f"{server.url}/v1/usage?{query}", key)
        assert status == 400 and body["error"]["code"] == "invalid_request", query
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM ai_usage_logs")
    finally:
        await conn.close()
    assert rows == 3  # exactly one row per finished task


async def test_revoked_key_disconnects_sockets_on_every_node(
    settings: Settings, http: aiohttp.ClientSession
) -> None:
    # A long re-check interval: only the pub/sub announcement can be this fast.
    shared = settings.model_copy(update={"auth_recheck_s": 600})
    node_a, node_b = await start_server(shared), await start_server(shared)
    try:
        owner = await node_a.new_key("revoke@test")
        _, new = await call(http, "POST", node_a.url + "/v1/keys", owner, json={})
        on_a, on_b = await node_a.client(new["key"]), await node_b.client(new["key"])
        bystander = await node_b.client(owner)  # same user, another key: stays
        channel = RedisKeys(shared.redis_prefix).revoked_channel()
        deadline = time.monotonic() + 10
        while (await node_a.engine.redis.pubsub_numsub(channel))[0][1] < 2:
            assert time.monotonic() < deadline, "the nodes' revocation listeners never subscribed"
            await asyncio.sleep(0.05)
        status, _ = await call(http, "DELETE", f"{node_a.url}/v1/keys/{new['id']}", owner)
        assert status == 204
        await wait_disconnected(on_a, 5)
        await wait_disconnected(on_b, 5)
        assert bystander.sio.connected
        assert (await bystander.call("execute", adhoc()))["ok"]
        err = await connect_error(node_b.url, new["key"])
        assert err is not None and err["code"] == "unauthorized"
    finally:
        await stop_server(node_a)
        await stop_server(node_b)


async def test_deleted_user_and_cli_revoke_are_caught_by_the_recheck(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = await start_server(settings.model_copy(update={"auth_recheck_s": 0.3}))
    try:
        gone_key, kept_key = await srv.new_key("gone@test"), await srv.new_key("cli@test")
        gone, by_cli = await srv.client(gone_key), await srv.client(kept_key)
        monkeypatch.setenv("DATABASE_URL", srv.settings.database_url or "")
        assert await asyncio.to_thread(cli_main, ["users", "delete", "--user", "gone@test"]) == 0
        await wait_disconnected(gone, 5)
        assert by_cli.sio.connected
        err = await connect_error(srv.url, gone_key)
        assert err is not None and err["code"] == "unauthorized"
        assert await asyncio.to_thread(cli_main, ["users", "delete", "--user", "gone@test"]) == 1
        assert await asyncio.to_thread(cli_main, ["keys", "list", "--user", "cli@test"]) == 0
        listed = capsys.readouterr().out
        assert kept_key[:10] in listed and kept_key not in listed
        assert (
            await asyncio.to_thread(
                cli_main, ["keys", "revoke", "--user", "cli@test", "--prefix", kept_key[:10]]
            )
            == 0
        )
        await wait_disconnected(by_cli, 5)
        assert (
            await asyncio.to_thread(
                cli_main, ["keys", "revoke", "--user", "cli@test", "--prefix", kept_key[:10]]
            )
            == 1
        )
    finally:
        await stop_server(srv)


async def test_connection_cap_per_user_over_every_node(settings: Settings) -> None:
    shared = settings.model_copy(update={"max_connections_per_user": 2})
    node_a, node_b = await start_server(shared), await start_server(shared)
    try:
        key = await node_a.new_key("conns@test")
        first = await node_a.client(key)
        await node_b.client(key)
        for node in (node_a, node_b):  # the third is refused on either node
            err = await connect_error(node.url, key)
            assert err is not None and err["code"] == "rate_limited"
            events.ConnectErrorData.model_validate(err)
        assert (await connect_error(node_b.url, await node_a.new_key("else@test"))) is None
        await first.sio.disconnect()
        deadline = time.monotonic() + 5
        while (err := await connect_error(node_b.url, key)) is not None:
            assert time.monotonic() < deadline, err  # the slot is freed on disconnect
            await asyncio.sleep(0.1)
    finally:
        await stop_server(node_a)
        await stop_server(node_b)


async def test_events_per_second_cap_per_socket(settings: Settings) -> None:
    srv = await start_server(settings.model_copy(update={"max_events_per_second": 5}))
    try:
        client = await srv.client(await srv.new_key("burst@test"))
        ref = {"task_id": str(uuid.uuid4())}
        acks = await asyncio.gather(*(client.call("unsubscribe", ref) for _ in range(60)))
        limited = [a for a in acks if not a["ok"]]
        assert 0 < len(limited) < 60
        assert {a["error"]["code"] for a in limited} == {"rate_limited"}
        assert all(a["error"]["details"]["retry_after_ms"] > 0 for a in limited)
        other = await srv.client(await srv.new_key("calm@test"))
        assert (await other.call("unsubscribe", ref))["ok"]  # per socket, not global
        deadline = time.monotonic() + 5  # the bucket refills at 5 events a second
        while not (await client.call("unsubscribe", ref))["ok"]:
            assert time.monotonic() < deadline, "the socket stayed rate limited"
            await asyncio.sleep(0.1)
    finally:
        await stop_server(srv)


def test_recheck_never_drops_a_socket_that_connected_during_its_query() -> None:
    live, gone, newcomer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    checked = [_Session(live, None, None, 1.0), _Session(gone, None, None, 1.0)]
    late = _Session(newcomer, None, None, 1.0)  # not in the query: its user is not in `live`
    judge = _not_in({live}, set(), checked)
    assert [judge(s) for s in (*checked, late)] == [False, True, False]
