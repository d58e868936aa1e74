"""SSE streams are connections like sockets: a revoked key, a deleted user and an expired
JWT end them (on every node), and they count toward the per-user connection cap."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from pydantic import SecretStr

from engine.settings import Settings
from tests.conftest import Server, start_server, stop_server
from tests.test_auth import AUDIENCE, ISSUER, SECRET, claims, connect_error, token

LONG = {"model": "simulated/long", "settings": {"max_tokens": 5000, "tokens_per_second": 50}}
LONG["messages"] = [{"role": "user", "content": "go on"}]


@pytest_asyncio.fixture
async def strict(settings: Settings) -> AsyncIterator[Server]:
    srv = await start_server(
        settings.model_copy(
            update={
                "jwt_secret": SecretStr(SECRET),
                "jwt_audience": AUDIENCE,
                "jwt_issuer": ISSUER,
                "auth_recheck_s": 0.3,
                "max_connections_per_user": 3,
            }
        )
    )
    try:
        yield srv
    finally:
        await stop_server(srv)


@dataclass
class Sse:
    """One open `GET /v1/tasks/{id}/stream`, read in the background."""

    resp: aiohttp.ClientResponse
    events: list[tuple[str, Any, float]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        event = ""
        try:
            async for raw in self.resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    self.events.append((event, json.loads(line[6:]), time.monotonic()))
        except aiohttp.ClientError:
            pass
        finally:
            self.ended.set()

    def after(self, moment: float) -> list[str]:
        return [e for e, _, at in self.events if at > moment]

    async def first_chunk(self) -> None:
        deadline = time.monotonic() + 20
        while not any(e == "task_chunk" for e, _, _ in self.events):
            assert time.monotonic() < deadline and not self.ended.is_set(), self.events
            await asyncio.sleep(0.05)


async def open_sse(http: aiohttp.ClientSession, url: str, tok: str, task_id: str) -> Sse:
    resp = await http.get(
        f"{url}/v1/tasks/{task_id}/stream", headers={"Authorization": f"Bearer {tok}"}
    )
    assert resp.status == 200, await resp.text()
    sse = Sse(resp)
    sse.reader = asyncio.create_task(sse.read())
    return sse


async def start_long(http: aiohttp.ClientSession, url: str, tok: str) -> str:
    async with http.post(
        f"{url}/v1/executions", json=LONG, headers={"Authorization": f"Bearer {tok}"}
    ) as resp:
        assert resp.status == 202, await resp.text()
        return str((await resp.json())["task_id"])


async def assert_cut(sse: Sse, since: float, within: float = 5.0) -> None:
    """The stream ends with an `unauthorized` error event, before the task does."""
    await asyncio.wait_for(sse.ended.wait(), within)
    kinds = sse.after(since)
    assert "task_done" not in kinds
    assert sse.events[-1][0] == "error" and sse.events[-1][1]["code"] == "unauthorized"
    sse.resp.close()


async def test_revoking_a_key_ends_its_sse_streams_on_every_node(
    settings: Settings, http: aiohttp.ClientSession
) -> None:
    a, b = await start_server(settings), await start_server(settings)
    try:
        first = await a.new_key()
        async with http.post(
            f"{a.url}/v1/keys",
            json={"name": "doomed"},
            headers={"Authorization": f"Bearer {first}"},
        ) as resp:
            doomed = await resp.json()
        task_id = await start_long(http, a.url, doomed["key"])
        on_b = await open_sse(http, b.url, doomed["key"], task_id)
        await on_b.first_chunk()
        revoked_at = time.monotonic()
        async with http.delete(
            f"{a.url}/v1/keys/{doomed['id']}", headers={"Authorization": f"Bearer {first}"}
        ) as resp:
            assert resp.status == 204
        await assert_cut(on_b, revoked_at, within=3.0)
        assert on_b.events[-1][2] - revoked_at < 3.0
    finally:
        await stop_server(a)
        await stop_server(b)


async def test_deleting_the_user_ends_its_sse_stream(
    strict: Server, http: aiohttp.ClientSession
) -> None:
    email = f"{uuid.uuid4().hex[:8]}@test"
    key = await strict.new_key(email)
    sse = await open_sse(http, strict.url, key, await start_long(http, strict.url, key))
    await sse.first_chunk()
    conn = await asyncpg.connect(strict.settings.database_url)
    try:
        await conn.execute("UPDATE users SET deleted_at = now() WHERE email = $1", email)
    finally:
        await conn.close()
    await assert_cut(sse, time.monotonic())


@pytest.mark.parametrize("rate", [200, 1000])
async def test_nothing_follows_the_error_that_ends_a_busy_stream(
    strict: Server, http: aiohttp.ClientSession, rate: int
) -> None:
    """A stream cut while chunks keep coming: the error event is the last thing written
    (a chunk the relay was already handing over must not follow it)."""
    email = f"{uuid.uuid4().hex[:8]}@test"
    key = await strict.new_key(email)
    busy = {**LONG, "settings": {"max_tokens": 5000, "tokens_per_second": rate}}
    async with http.post(
        f"{strict.url}/v1/executions", json=busy, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        task_id = str((await resp.json())["task_id"])
    sse = await open_sse(http, strict.url, key, task_id)
    await sse.first_chunk()
    conn = await asyncpg.connect(strict.settings.database_url)
    try:
        await conn.execute("UPDATE users SET deleted_at = now() WHERE email = $1", email)
    finally:
        await conn.close()
    await asyncio.wait_for(sse.ended.wait(), 10)
    kinds = [e for e, _, _ in sse.events]
    assert "error" in kinds, kinds[-5:]
    assert kinds.index("error") == len(kinds) - 1, kinds[kinds.index("error") :][:5]
    sse.resp.close()


async def test_an_expired_jwt_ends_its_sse_stream(
    strict: Server, http: aiohttp.ClientSession
) -> None:
    short = token(claims(exp=int(time.time()) + 3))
    sse = await open_sse(http, strict.url, short, await start_long(http, strict.url, short))
    await sse.first_chunk()
    await assert_cut(sse, time.monotonic(), within=10.0)


async def test_sse_streams_count_toward_the_connection_cap(
    strict: Server, http: aiohttp.ClientSession
) -> None:
    key = await strict.new_key()
    task_id = await start_long(http, strict.url, key)
    streams = [await open_sse(http, strict.url, key, task_id) for _ in range(3)]
    async with http.get(
        f"{strict.url}/v1/tasks/{task_id}/stream", headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        assert resp.status == 429
        assert (await resp.json())["error"]["code"] == "rate_limited"
    assert (await connect_error(strict.url, key))["code"] == "rate_limited"
    streams[0].resp.close()
    await asyncio.wait_for(streams[0].ended.wait(), 5)
    # The server notices the client left (within its poll) and frees the slot.
    deadline = time.monotonic() + 10
    while (await connect_error(strict.url, key)) is not None:
        assert time.monotonic() < deadline, "the closed stream still counts"
        await asyncio.sleep(0.2)
    for sse in streams[1:]:
        sse.resp.close()
