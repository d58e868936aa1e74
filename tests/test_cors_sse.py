"""The HTTP API from a browser on another origin: CORS preflights answered or refused by
CORS_ALLOWED_ORIGINS, Socket.IO's handshake under the same rule, and an SSE stream that a
reconnecting EventSource resumes with Last-Event-ID, with no gap and no repeat."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import socketio

from engine.settings import Settings
from tests.conftest import Server, start_server, stop_server

APP = "https://app.example.com"
OTHER = "https://evil.example.net"
SLOW = {"max_tokens": 60, "tokens_per_second": 30}


@pytest_asyncio.fixture
async def listed(settings: Settings) -> AsyncIterator[Server]:
    """A server that lets exactly one foreign origin in."""
    srv = await start_server(settings.model_copy(update={"cors_allowed_origins": f" {APP}/ "}))
    try:
        yield srv
    finally:
        await stop_server(srv)


def preflight(origin: str, method: str = "POST", headers: str = "authorization, content-type"):
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_preflight_from_an_allowed_origin_is_answered(
    listed: Server, http: aiohttp.ClientSession
) -> None:
    key = await listed.new_key()
    async with http.options(listed.url + "/v1/executions", headers=preflight(APP)) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        allowed = resp.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert "Access-Control-Allow-Credentials" not in resp.headers  # tokens, not cookies
        assert resp.headers["Vary"].startswith("Origin")
    # The request itself, and an error answer, both readable by that page.
    body = {"messages": [{"role": "user", "content": "Hi"}], "model": "simulated/x"}
    headers = {"Origin": APP, "Authorization": f"Bearer {key}"}
    async with http.post(listed.url + "/v1/executions", json=body, headers=headers) as resp:
        assert resp.status == 202
        assert resp.headers["Access-Control-Allow-Origin"] == APP
    async with http.get(listed.url + "/v1/me", headers={"Origin": APP}) as resp:
        assert resp.status == 401
        assert resp.headers["Access-Control-Allow-Origin"] == APP


async def test_preflight_from_an_unlisted_origin_is_refused(
    listed: Server, http: aiohttp.ClientSession
) -> None:
    for headers in (preflight(OTHER), preflight(OTHER, headers="x-request-id")):
        async with http.options(listed.url + "/v1/executions", headers=headers) as resp:
            assert resp.status == 403
            assert "Access-Control-Allow-Origin" not in resp.headers
            assert (await resp.json())["error"]["code"] == "forbidden"
    async with http.get(listed.url + "/v1/me", headers={"Origin": OTHER}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_an_allowed_origin_may_send_the_headers_it_asks_for(
    listed: Server, http: aiohttp.ClientSession
) -> None:
    asked = "authorization, content-type, x-request-id, X-Client-Version"
    async with http.options(
        listed.url + "/v1/executions", headers=preflight(APP, headers=asked)
    ) as resp:
        assert resp.status == 204
        allowed = {h.strip() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type", "x-request-id", "x-client-version"} <= allowed
        assert "Access-Control-Request-Headers" in resp.headers["Vary"]
    bad = preflight(APP, headers="x-ok, bad header")  # not a header name: refused
    async with http.options(listed.url + "/v1/executions", headers=bad) as resp:
        assert resp.status == 403


async def test_socketio_handshake_sends_no_credentials_header(
    server: Server, listed: Server, http: aiohttp.ClientSession
) -> None:
    for srv, origin in ((server, OTHER), (listed, APP)):
        url = srv.url + "/socket.io/?EIO=4&transport=polling"
        async with http.get(url, headers={"Origin": origin}) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] in (origin, "*")
            assert "Access-Control-Allow-Credentials" not in resp.headers
        pre = preflight(origin, "GET", "content-type")
        async with http.options(url, headers=pre) as resp:
            assert "Access-Control-Allow-Credentials" not in resp.headers


async def test_default_lets_any_origin_call_with_a_token(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url + "/v1/tasks/00000000-0000-0000-0000-000000000000/stream"
    async with http.options(url, headers=preflight(OTHER, "GET", "authorization")) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in resp.headers


async def connect_from(server: Server, origin: str, key: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    try:
        await sio.connect(
            server.url,
            auth={"token": key},
            headers={"Origin": origin},
            transports=["websocket"],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        if sio.eio.http is not None:  # a refused handshake leaves its HTTP session open
            await sio.eio.http.close()
        raise
    server.clients.append(sio)
    return sio


async def test_socketio_follows_the_same_origins(listed: Server) -> None:
    key = await listed.new_key()
    assert (await connect_from(listed, APP, key)).connected
    assert (await connect_from(listed, listed.url, key)).connected  # the playground's own
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect_from(listed, OTHER, key)


async def sse_events(resp: aiohttp.ClientResponse, limit: int | None = None) -> list[Any]:
    """(id, event, payload) of each event, stopping after `limit` events."""
    events: list[Any] = []
    block: dict[str, str] = {}
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line:
            field, _, value = line.partition(": ")
            block[field] = value
            continue
        if "data" in block:
            events.append((block.get("id"), block["event"], json.loads(block["data"])))
            if limit is not None and len(events) >= limit:
                break
        block = {}
    return events


async def test_sse_resumes_from_last_event_id_without_gap_or_repeat(
    listed: Server, http: aiohttp.ClientSession
) -> None:
    key = await listed.new_key()
    headers = {"Authorization": f"Bearer {key}", "Origin": APP}
    body = {"messages": [{"role": "user", "content": "Hi"}], "model": "simulated/x"}
    async with http.post(
        listed.url + "/v1/executions", json={**body, "settings": SLOW}, headers=headers
    ) as resp:
        task_id = (await resp.json())["task_id"]
    url = f"{listed.url}/v1/tasks/{task_id}/stream"
    async with http.get(url, headers=headers) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == APP  # a streamed answer too
        first = await sse_events(resp, limit=3)  # then the connection drops
    assert [e[1] for e in first] == ["task_chunk"] * 3
    assert [e[0] for e in first] == [str(e[2]["seq"]) for e in first]
    # A reconnecting EventSource sends the last id it saw; that wins over ?after_seq.
    resume = {**headers, "Last-Event-ID": first[-1][0]}
    async with http.get(url + "?after_seq=0", headers=resume) as resp:
        rest = await sse_events(resp)
    done = rest[-1][2]
    assert rest[-1][1] == "task_done" and rest[-1][0] == str(done["last_seq"])
    chunks = [e[2] for e in first + rest if e[1] == "task_chunk"]
    assert [c["seq"] for c in chunks] == list(range(1, done["last_seq"] + 1))
    assert "".join(c["text"] for c in chunks) == done["text"]
    async with http.get(url, headers={**headers, "Last-Event-ID": "soon"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["details"]["errors"][0]["field"] == "Last-Event-ID"


async def test_a_quiet_stream_gets_keep_alive_comments(
    settings: Settings, http: aiohttp.ClientSession
) -> None:
    srv = await start_server(settings.model_copy(update={"sse_keepalive_s": 0.2}))
    try:
        key = await srv.new_key()
        headers = {"Authorization": f"Bearer {key}"}
        body = {
            "messages": [{"role": "user", "content": "Hi"}],
            "model": "simulated/x",
            "settings": {"max_tokens": 3, "tokens_per_second": 1},
        }
        async with http.post(srv.url + "/v1/executions", json=body, headers=headers) as resp:
            task_id = (await resp.json())["task_id"]
        url = f"{srv.url}/v1/tasks/{task_id}/stream"
        lines: list[str] = []
        async with http.get(url, headers=headers) as resp:
            async for raw in resp.content:
                lines.append(raw.decode().rstrip("\n"))
                if lines[-1].startswith("event: task_done"):
                    break
        assert ": keep-alive" in lines, lines
        assert lines.count("event: task_chunk") >= 1
    finally:
        await stop_server(srv)
