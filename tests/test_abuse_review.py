"""Holes a hostile review found: binary Socket.IO attachments buffered without limit, an
oversized request line or header answered by aiohttp in plain text that quotes it, and
malformed Engine.IO / Socket.IO frames that logged tracebacks or got no ack."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.prompts.models import JsonSchemaValidation
from engine.prompts.validation import validate_text
from engine.settings import Settings
from server.process.embedded import EmbeddedPostgres
from tests.conftest import Server, start_server, stop_server
from tests.library_helpers import api_for, prompt_body
from tests.test_abuse_input import no_tracebacks, raw_socket
from tests.test_auth import connect_error


def _sio(server: Server) -> Any:
    from server.state import SIO

    return server.app[SIO]


async def test_binary_attachments_are_refused_and_never_buffered(
    server: Server, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    sock = await raw_socket(http, server, await server.new_key())
    # A binary event announcing one attachment, with ack id 7: refused at once.
    answer = await asyncio.wait_for(
        sock.ack('451-7["execute",{"_placeholder":true,"num":0}]', 7), 10
    )
    assert answer["ok"] is False and answer["error"]["code"] == "invalid_request", answer
    assert answer["error"]["message"] == "binary data is not accepted", answer
    # Without an ack id, and its attachment frames: nothing is kept for them.
    await sock.ws.send_str('455-["execute",{"_placeholder":true,"num":0}]')
    for _ in range(20):
        await sock.ws.send_bytes(b"\0" * 64 * 1024)
    # The connection still serves, and the server holds no partial packet.
    answer = await asyncio.wait_for(sock.ack('428["unsubscribe",{"task_id":"x"}]', 8), 10)
    assert answer["error"]["code"] == "invalid_request", answer
    assert not _sio(server)._binary_packet
    await sock.ws.close()
    no_tracebacks(caplog)


SECRET = "SECRETKEY" * 2300  # a 20 KB token: no part of it may come back or reach a log


async def raw_http(server: Server, head: str) -> str:
    """Send a request head over a plain TCP socket; the whole answer as text."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer.decode(errors="replace")


@pytest.mark.parametrize(
    "head",
    [
        f"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ps_{SECRET}\r\n\r\n",
        f"GET /v1/me?token={SECRET * 4} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer ps_{SECRET[:40]}\r\n\r\n",
        f"GET /v1/me HTTP/1.1\r\nHost: x\r\nX-{SECRET}: 1\r\n\r\n",
    ],
    ids=["authorization-20kb", "url-80kb", "header-name-20kb"],
)
async def test_an_oversized_request_head_is_json_and_echoes_nothing(
    server: Server, caplog: pytest.LogCaptureFixture, head: str
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await raw_http(server, head)
    status_line, _, rest = answer.partition("\r\n")
    headers, _, body = rest.partition("\r\n\r\n")
    assert status_line.split()[1] in ("400", "414", "431"), answer[:300]
    assert "application/json" in headers.lower(), answer[:300]
    assert json.loads(body)["error"]["code"] == "invalid_request", body
    for text in (answer, caplog.text):
        assert "ECRETKE" not in text, text[:300]


def at_most_one_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    no_tracebacks(caplog)
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not loud, loud


async def test_a_frame_that_is_not_engine_io_closes_the_socket_cleanly(
    server: Server, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await http.ws_connect(
        server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    )
    assert (await ws.receive_str()).startswith("0{")
    await ws.send_str("xyz")  # before authenticating: no Engine.IO packet type
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        assert "HTTP" not in msg.data and "500" not in msg.data, msg.data
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    await ws.close()
    at_most_one_warning_each(caplog)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) <= 1, [r.getMessage() for r in warned]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("421[{}]", "(event)"),
        ("421[null]", "(event)"),
        ("421[]", "(event)"),
        ('421["nope",{}]', "(event)"),
        ('421["connect",{}]', "(event)"),
        ('421["disconnect"]', "(event)"),
        ("421{}", "(payload)"),
    ],
)
async def test_an_event_without_a_known_name_gets_an_error_ack(
    server: Server,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    raw: str,
    field: str,
) -> None:
    sock = await raw_socket(http, server, await server.new_key())
    answer = await asyncio.wait_for(sock.ack(raw, 1), 10)
    assert answer["ok"] is False and answer["error"]["code"] == "invalid_request", answer
    # The socket is still connected and serves.
    answer = await asyncio.wait_for(sock.ack('422["unsubscribe",{"task_id":"x"}]', 2), 10)
    assert answer["error"]["code"] == "invalid_request", answer
    await sock.ws.close()
    at_most_one_warning_each(caplog)


async def test_a_socket_connect_while_postgres_is_down_is_service_unavailable(
    settings: Settings, tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")  # this test's own Postgres, stopped for real
    url = pg.start()
    try:
        srv = await start_server(settings.model_copy(update={"database_url": url}))
        try:
            key = await srv.new_key()
            pg.stop()
            data = await connect_error(srv.url, key)
        finally:
            await stop_server(srv)
    finally:
        pg.stop()
    assert isinstance(data, dict) and data["code"] == "service_unavailable", data
    assert data["message"] and key not in str(data)


LOOPS = [
    {"$ref": "#"},
    {"allOf": [{"$ref": "#"}]},
    {
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}},
        "properties": {"x": {"$ref": "#/$defs/a"}},
    },
    {"properties": {"x": {"not": {"$ref": "#/properties/x"}}}},
]


@pytest.mark.parametrize("schema", LOOPS)
async def test_a_json_schema_whose_ref_loops_is_refused_when_saved(
    server: Server, http: aiohttp.ClientSession, schema: dict[str, object]
) -> None:
    owner = await api_for(http, server)
    body = prompt_body(validations=[{"type": "json_schema", "schema": schema}])
    status, answer = await owner.call("POST", "/v1/prompts", body)
    assert status == 400 and answer["error"]["code"] == "invalid_request", answer
    (error,) = answer["error"]["details"]["errors"]
    assert error["field"].startswith("validations.0"), error
    assert "$ref" in error["message"], error


def test_a_recursive_schema_that_descends_is_accepted_and_a_loop_fails_cleanly() -> None:
    tree = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
    JsonSchemaValidation.model_validate({"type": "json_schema", "schema": tree})
    assert validate_text('{"kids": [{"kids": []}]}', [{"type": "json_schema", "schema": tree}])
    # A loop that reached the check anyway (saved before this rule) fails the validation.
    result = validate_text("{}", [{"type": "json_schema", "schema": {"$ref": "#"}}])
    assert result.status == "failed", result
    assert result.errors[0]["reason"] == "recursion", result
    # So does an output nested past Python's recursion limit (a model can be made to write it).
    deep = validate_text("[" * 100_000 + "]" * 100_000, [{"type": "json_schema", "schema": tree}])
    assert deep.status == "failed" and deep.errors[0]["reason"] == "recursion", deep
