"""What a client sees of our own outages: `service_unavailable` (503), never `internal`;
and a client closing its stream is an ordinary event, not an error in the log."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from engine.settings import Settings
from server.process.embedded import EmbeddedPostgres
from server.state import RELAY
from tests.conftest import start_server, stop_server
from tests.faults import adhoc
from tests.nodes import until


async def test_postgres_stopped_answers_service_unavailable(
    settings: Settings, tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")  # this test's own Postgres, stopped for real
    url = pg.start()
    try:
        srv = await start_server(settings.model_copy(update={"database_url": url}))
        try:
            key = await srv.new_key()
            client = await srv.client(key)
            pg.stop()
            ack = await client.call("execute", adhoc(5, 0))
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{srv.url}/v1/executions",
                    json=adhoc(5, 0),
                    headers={"Authorization": f"Bearer {key}"},
                ) as resp:
                    status, body = resp.status, await resp.json()
            pg.start()
        finally:
            await stop_server(srv)
    finally:
        pg.stop()
    assert status == 503, body
    assert body["error"]["code"] == "service_unavailable"
    assert ack["ok"] is False and ack["error"]["code"] == "service_unavailable"


async def test_a_client_closing_its_stream_is_not_an_error(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    srv = await start_server(settings)
    try:
        key = await srv.new_key()
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession() as http:
            task_ids = []
            for body in (adhoc(400, 0), adhoc(8_000, 100)):  # one ended, one streaming
                async with http.post(
                    f"{srv.url}/v1/executions", json=body, headers=headers
                ) as resp:
                    task_ids.append((await resp.json())["task_id"])
            for i in range(40):  # each stream opened, then the client goes away at once
                resp = await http.get(
                    f"{srv.url}/v1/tasks/{task_ids[i % 2]}/stream", headers=headers
                )
                resp.close()
        relay = srv.app[RELAY]
        await until(lambda: not relay._watches.get(task_ids[1]), what="every stream dropped")
    finally:
        await stop_server(srv)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.WARNING)
