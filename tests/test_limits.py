"""Per-request size limits: messages, characters per message, variables; each refused with
`invalid_request` and a stable `details.limit`, before any task row is written. Images
against the transports' sizes: at the maximum accepted, just over it named, beyond the
transport answered where the transport can answer (websocket, polling, HTTP routes and the
OpenAI-compatible endpoint)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from engine.settings import Settings, base64_size
from tests.conftest import SMALL_LIMIT, Server, start_server, stop_server


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "simulated/l",
        "settings": {"max_tokens": 1, "tokens_per_second": 0},
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


@pytest.mark.parametrize(
    ("payload", "limit", "field"),
    [
        (body(messages=[{"role": "user", "content": "m"}] * 4), "messages", "messages"),
        (
            body(messages=[{"role": "user", "content": "x" * 101}]),
            "message_chars",
            "messages.0.content",
        ),
        (body(variables={f"v{i}": i for i in range(4)}), "variables", "variables"),
    ],
)
async def test_request_limits(
    settings: Settings, payload: dict[str, Any], limit: str, field: str
) -> None:
    srv = await start_server(
        settings.model_copy(
            update={"max_messages": 3, "max_message_chars": 100, "max_variables": 3}
        )
    )
    try:
        client = await srv.client(await srv.new_key())
        ack = await client.call("execute", payload)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
        details = ack["error"]["details"]
        assert details["limit"] == limit and details["errors"][0]["field"] == field, ack
        within = await client.call("execute", body())
        assert within["ok"], within  # within limits: fine
        conn = await asyncpg.connect(srv.settings.database_url)
        try:
            tasks = await conn.fetch("SELECT task_id, status FROM ai_tasks")
            assert [str(t["task_id"]) for t in tasks] == [within["task_id"]], tasks
        finally:
            await conn.close()
    finally:
        await stop_server(srv)


# -- images against the transports' sizes (docs/tenancy.md "Limits") --------------------------

TRANSPORTS = ["websocket", "polling", "executions", "agent_run", "chat_completions"]


def png_of(size: int) -> str:
    """Base64 of a PNG-signed blob of exactly `size` bytes."""
    head = b"\x89PNG\r\n\x1a\n"
    return base64.b64encode(head + b"\x00" * (size - len(head))).decode()


def image_body(*datas: str) -> dict[str, Any]:
    images = [{"type": "image", "media_type": "image/png", "data": d} for d in datas]
    return body(messages=[{"role": "user", "content": [{"type": "text", "text": "x"}, *images]}])


@dataclass
class Answer:
    """What a transport answered: accepted, or an error's HTTP status, code, limit, field."""

    ok: bool
    status: int = 0
    code: str | None = None
    limit: str | None = None
    field: str | None = None


async def _agent(srv: Server, http: aiohttp.ClientSession, key: str) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    template = {"name": "Eyes", "system_prompt": "Describe images.", "model": "simulated/eyes"}
    async with http.post(f"{srv.url}/v1/agent-templates", json=template, headers=headers) as r:
        assert r.status == 201, await r.text()
        template_id = (await r.json())["id"]
    agent = {"template_id": template_id, "name": "Eyes"}
    async with http.post(f"{srv.url}/v1/agents", json=agent, headers=headers) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["id"])


def _chat(payload: dict[str, Any]) -> dict[str, Any]:
    """The execute body as a Chat Completions request (images as `data:` URLs)."""
    content = []
    for part in payload["messages"][0]["content"]:
        if part["type"] == "text":
            content.append(part)
        else:
            url = f"data:{part['media_type']};base64,{part['data']}"
            content.append({"type": "image_url", "image_url": {"url": url}})
    return {
        "model": payload["model"],
        "max_tokens": 1,
        "messages": [{"role": "user", "content": content}],
    }


async def send(
    srv: Server, http: aiohttp.ClientSession, transport: str, payload: dict[str, Any]
) -> Answer:
    """Send one execute over `transport` and wait for its end when it is accepted."""
    key = await srv.new_key()
    if transport in ("websocket", "polling"):
        client = await srv.client(key, transports=[transport])
        ack = await client.call("execute", payload, timeout=60)
        if ack["ok"]:
            done = await client.wait_done(ack["task_id"], timeout=60)
            assert done["status"] == "completed", done
            return Answer(True)
        error = ack["error"]
        first = (error.get("details") or {}).get("errors") or [{}]
        limit = (error.get("details") or {}).get("limit")
        return Answer(False, 0, error["code"], limit, first[0].get("field"))
    headers = {"Authorization": f"Bearer {key}"}
    path, sent = "/v1/executions", payload
    if transport == "agent_run":
        path = f"/v1/agents/{await _agent(srv, http, key)}/run"
    elif transport == "chat_completions":
        path, sent = "/v1/chat/completions", _chat(payload)
    # a large body as a stream (aiohttp warns about one given as bytes)
    raw = io.BytesIO(json.dumps(sent).encode())
    headers["Content-Type"] = "application/json"
    async with http.post(srv.url + path, data=raw, headers=headers) as resp:
        answer = await resp.json()
        if resp.status < 300:
            return Answer(True, resp.status)
        error = answer["error"]
        if transport == "chat_completions":  # OpenAI's shape: the field is `param`
            return Answer(False, resp.status, error["code"], None, error["param"])
        first = (error.get("details") or {}).get("errors") or [{}]
        limit = (error.get("details") or {}).get("limit")
        return Answer(False, resp.status, error["code"], limit, first[0].get("field"))


def _image_field(transport: str) -> str:
    suffix = "image_url.url" if transport == "chat_completions" else "data"
    return f"messages.0.content.1.{suffix}"


# python-engineio's polling client posts a large payload as bytes, which aiohttp warns about
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_image_at_the_default_maximum_is_accepted_and_one_byte_more_is_named(
    server: Server, http: aiohttp.ClientSession, transport: str
) -> None:
    """With the default limits: an image of exactly MAX_IMAGE_BYTES goes through every
    transport (the payload limit admits it), one byte more is `payload_too_large` with
    `details.limit = "image_bytes"` naming the image's field."""
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    largest = defaults.max_image_bytes
    assert server.settings.max_image_bytes == largest
    assert server.settings.max_payload_bytes == defaults.max_payload_bytes
    accepted = await send(server, http, transport, image_body(png_of(largest)))
    assert accepted.ok, accepted
    over = await send(server, http, transport, image_body(png_of(largest + 1)))
    assert over.code == "payload_too_large", over
    assert over.field == _image_field(transport), over
    if transport != "chat_completions":
        assert over.limit == "image_bytes", over
    if transport not in ("websocket", "polling"):
        assert over.status == 413, over


async def test_the_default_payload_limit_admits_every_image_the_image_limits_allow(
    server: Server, http: aiohttp.ClientSession
) -> None:
    """MAX_IMAGES images that add up to MAX_IMAGES_TOTAL_BYTES, in base64, within the default
    MAX_PAYLOAD_BYTES: accepted over a websocket; a byte more of images is named."""
    settings = server.settings
    assert settings.max_payload_bytes >= base64_size(settings.max_images_total_bytes) + 2**20
    each = settings.max_images_total_bytes // settings.max_images
    assert each <= settings.max_image_bytes
    sizes = [each] * settings.max_images
    sizes[-1] += settings.max_images_total_bytes - sum(sizes)
    accepted = await send(server, http, "websocket", image_body(*map(png_of, sizes)))
    assert accepted.ok, accepted
    sizes[-1] += 1
    over = await send(server, http, "websocket", image_body(*map(png_of, sizes)))
    assert (over.code, over.limit) == ("payload_too_large", "images_total_bytes"), over
    assert over.field == f"messages.0.content.{len(sizes)}.data", over


@pytest.mark.parametrize("transport", ["executions", "agent_run", "chat_completions"])
async def test_a_body_over_the_http_limit_gets_our_error_body(
    small_server: Server, http: aiohttp.ClientSession, transport: str
) -> None:
    """Above MAX_PAYLOAD_BYTES an HTTP body is refused before it is parsed (aiohttp's
    client_max_size), still answered 413 with our error body, also for a body of megabytes."""
    for size in (SMALL_LIMIT + 1, 3 * 2**20):
        answer = await send(small_server, http, transport, image_body(png_of(size)))
        assert (answer.ok, answer.status, answer.code) == (False, 413, "payload_too_large")
        if transport != "chat_completions":
            assert answer.limit == "payload_bytes", answer


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_socket_payload_over_the_limit_is_answered_and_beyond_the_transport_closed(
    small_server: Server, transport: str
) -> None:
    """Over a socket, a payload above MAX_PAYLOAD_BYTES but within the transport's buffer
    (2 x MAX_PAYLOAD_BYTES + 64 KiB) is acked `payload_too_large`; one beyond the buffer is
    refused by the transport, which closes only that connection."""
    key = await small_server.new_key()
    client = await small_server.client(key, transports=[transport])
    ack = await client.call("execute", image_body(png_of(SMALL_LIMIT)))
    assert ack["ok"] is False and ack["error"]["code"] == "payload_too_large", ack
    assert ack["error"]["details"] == {"limit": "payload_bytes", "max": SMALL_LIMIT}, ack
    bystander = await small_server.client(key, transports=[transport])
    closed = asyncio.Event()
    client.sio.on("disconnect", lambda *args: closed.set())
    beyond = 2 * SMALL_LIMIT + 64 * 1024 + 4096
    await client.sio.emit("execute", image_body(png_of(beyond)))
    await asyncio.wait_for(closed.wait(), 20)
    after = await bystander.call("execute", body())
    assert after["ok"], after
    await bystander.wait_done(after["task_id"])


async def test_a_websocket_message_beyond_the_transport_is_closed_as_too_big(
    small_server: Server, http: aiohttp.ClientSession
) -> None:
    """What a client below Socket.IO sees of a message the transport refuses unread: the
    websocket's close code 1009 (message too big), not a bare drop."""
    key = await small_server.new_key()
    url = small_server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with http.ws_connect(url) as ws:
        assert (await ws.receive_str()).startswith("0")  # Engine.IO open
        await ws.send_str("40" + json.dumps({"token": key}))
        assert (await ws.receive_str()).startswith("40")  # Socket.IO connected
        event = json.dumps(["execute", image_body(png_of(2 * SMALL_LIMIT + 64 * 1024 + 4096))])
        await ws.send_str("420" + event)
        while not ws.closed:
            message = await ws.receive(timeout=10)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
