"""Bring your own key: stored encrypted, shown as last4, used by byok tasks only, and never
found in logs, Redis or any table; a tampered ciphertext fails closed."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from pydantic import SecretStr

from db import users
from db.pool import connect
from engine.accounts.secrets import new_secret
from engine.protocol import responses as events
from engine.settings import Settings
from server.state import REDIS
from tests.conftest import Server
from tests.provider_env import (
    SERVER_KEY,
    Fakes,
    dump_every_table,
    fetch,
    provider_server,
)

SECRET = new_secret()


@pytest_asyncio.fixture
async def srv(settings: Settings, fk: Fakes) -> AsyncIterator[Server]:
    async with provider_server(settings, fk, provider_keys_secret=SecretStr(SECRET)) as server:
        yield server


async def user_key(server: Server, tier: str) -> str:
    conn = await connect(server.settings.database_url or "")
    try:
        user = await users.ensure_user(conn, f"{uuid.uuid4().hex[:8]}@test", tier)
        return (await users.create_api_key(conn, user.id)).key
    finally:
        await conn.close()


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(
        method, url, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        text = await resp.text()
        return resp.status, (await resp.json() if text else None)


def planted() -> str:
    return f"sk-planted-{uuid.uuid4().hex}"


async def run_task(server: Server, token: str, model: str) -> dict[str, Any]:
    client = await server.client(token)
    ack = await client.call(
        "execute", {"model": model, "messages": [{"role": "user", "content": "hi there"}]}
    )
    assert ack["ok"], ack
    return await client.wait_done(ack["task_id"])


async def test_routes_store_list_and_delete_without_showing_the_key(
    srv: Server, http: aiohttp.ClientSession
) -> None:
    token, secret = await user_key(srv, "byok"), planted()
    base = f"{srv.url}/v1/me/provider-keys"
    status, body = await call(http, "PUT", f"{base}/anthropic", token, {"key": secret})
    assert status == 200 and body == {"provider": "anthropic", "last4": secret[-4:]}
    events.ProviderKeyStored.model_validate(body)
    status, body = await call(http, "GET", base, token)
    events.ProviderKeyList.model_validate(body)
    assert status == 200 and [(i["provider"], i["last4"]) for i in body["items"]] == [
        ("anthropic", secret[-4:])
    ]
    assert secret not in str(body) and "ciphertext" not in str(body)
    status, body = await call(http, "PUT", f"{base}/simulated", token, {"key": secret})
    assert status == 404 and body["error"]["code"] == "not_found"
    for bad in ({}, {"key": ""}, {"key": secret, "extra": 1}, {"key": "two words"}):
        status, body = await call(http, "PUT", f"{base}/google", token, bad)
        assert status == 400 and body["error"]["code"] == "invalid_request", bad
        events.HttpError.model_validate(body)
        assert secret not in str(body)
    assert (await call(http, "DELETE", f"{base}/anthropic", token))[0] == 204
    status, body = await call(http, "DELETE", f"{base}/anthropic", token)
    assert status == 404 and body["error"]["code"] == "not_found"
    assert (await call(http, "GET", base, token))[1] == {"items": []}
    assert (await call(http, "GET", base, "nope"))[0] == 401


async def test_byok_task_uses_own_key_and_the_key_is_nowhere(
    srv: Server, fk: Fakes, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token, secret = await user_key(srv, "byok"), planted()
    base = f"{srv.url}/v1/me/provider-keys"
    for provider in ("anthropic", "google", "openai"):
        assert (await call(http, "PUT", f"{base}/{provider}", token, {"key": secret}))[0] == 200
    # A retry, a fallback to another provider and a cut: every path that writes events.
    done = await run_task(srv, token, "anthropic/claude-haiku-4-5:fail_first=1")
    assert done["status"] == "completed"
    assert [h["authorization"] for h in fk.anthropic.headers] == [f"Bearer {secret}"] * 2
    client = await srv.client(token)
    ack = await client.call(
        "execute",
        {
            "model": "openai/m:status=500",
            "messages": [{"role": "user", "content": "hi"}],
            "settings": {"fallbacks": ["google/gemini-2.0-flash~tokens=5~cut_after=2"]},
        },
    )
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "failed" and done["provider"] == "google"
    assert fk.google.headers[-1]["x-goog-api-key"] == secret
    # Another tier's task runs on the server's key.
    await run_task(srv, await user_key(srv, "premium"), "anthropic/claude-haiku-4-5")
    assert fk.anthropic.headers[-1]["authorization"] == f"Bearer {SERVER_KEY}"

    redis = srv.app[REDIS]
    seen: list[str] = []
    async for key in redis.scan_iter(match=f"{srv.settings.redis_prefix}*"):
        seen.append(key.decode())
        kind = (await redis.type(key)).decode()
        if kind == "string":
            seen.append(str(await redis.get(key)))
        elif kind == "stream":
            seen.append(str(await redis.xrange(key)))
        elif kind == "hash":
            seen.append(str(await redis.hgetall(key)))
        elif kind in ("list", "set", "zset"):
            seen.append(str(await redis.dump(key)))
    tables = await dump_every_table(srv)
    assert secret not in caplog.text
    assert secret not in "\n".join(seen)
    assert secret not in tables
    assert secret[-4:] in tables and "ciphertext" in tables  # stored, but only sealed


async def test_tampered_or_foreign_ciphertext_fails_closed(
    srv: Server, http: aiohttp.ClientSession
) -> None:
    base = f"{srv.url}/v1/me/provider-keys"
    alice, bob = await user_key(srv, "byok"), await user_key(srv, "byok")
    await call(http, "PUT", f"{base}/anthropic", alice, {"key": planted()})
    await call(http, "PUT", f"{base}/anthropic", bob, {"key": planted()})
    rows = await fetch(
        srv,
        "SELECT user_id, provider_keys FROM user_ai_settings"
        " WHERE provider_keys ? 'anthropic' ORDER BY user_id",
    )
    assert len(rows) == 2
    # Bob's row gets Alice's ciphertext: sealed for another user, it must not open.
    alice_row = next(r for r in rows if r["provider_keys"] != rows[1]["provider_keys"])
    other = rows[1] if alice_row is rows[0] else rows[0]
    await fetch(
        srv,
        "UPDATE user_ai_settings SET provider_keys = $2::text::jsonb WHERE user_id = $1",
        other["user_id"],
        alice_row["provider_keys"],
    )
    await fetch(
        srv,
        "UPDATE user_ai_settings SET provider_keys = jsonb_set(provider_keys,"
        " '{anthropic,ciphertext}', '\"gAAAAAtampered\"') WHERE user_id = $1",
        alice_row["user_id"],
    )
    for token in (alice, bob):
        done = await run_task(srv, token, "anthropic/claude-haiku-4-5")
        assert done["status"] == "failed" and done["error"]["code"] == "provider_error"
        assert "store it again" in done["error"]["message"]


async def test_byok_without_a_stored_key_is_provider_error(srv: Server, fk: Fakes) -> None:
    done = await run_task(srv, await user_key(srv, "byok"), "google/gemini-2.0-flash")
    assert done["status"] == "failed" and done["error"]["code"] == "provider_error"
    assert fk.google.requests == []  # never fell back to the server's key
    done = await run_task(srv, await user_key(srv, "byok"), "simulated/default")
    assert done["status"] == "completed"  # the simulator needs no key


async def test_a_server_without_a_secret_stores_no_keys(
    settings: Settings, fk: Fakes, http: aiohttp.ClientSession
) -> None:
    async with provider_server(settings, fk) as server:
        token = await user_key(server, "byok")
        status, body = await call(
            http, "PUT", f"{server.url}/v1/me/provider-keys/openai", token, {"key": planted()}
        )
    assert status == 409 and body["error"]["code"] == "invalid_request"
    assert "PROVIDER_KEYS_SECRET" in body["error"]["message"]


async def test_cli_sets_lists_and_deletes_a_key(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "OPENAI_API_KEY")}
    env.update(DATABASE_URL=settings.database_url or "", PROVIDER_KEYS_SECRET=SECRET)
    script = Path(sys.executable).parent / "promptrelay"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    secret = planted()

    async def run(*args: str, stdin: str = "") -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *cli,
            "provider-keys",
            *args,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
        return proc.returncode or 0, out.decode()

    code, out = await run(
        "set", "--user", "cli@test", "--provider", "anthropic", stdin=secret + "\n"
    )
    assert code == 0 and f"...{secret[-4:]}" in out and secret not in out
    code, out = await run("list", "--user", "cli@test")
    assert code == 0 and out.startswith("anthropic") and secret not in out
    conn = await connect(settings.database_url or "")
    try:
        stored = await conn.fetchval(
            "SELECT provider_keys::text FROM user_ai_settings s"
            " JOIN users u ON u.id = s.user_id"
            " WHERE u.email = 'cli@test'"
        )
    finally:
        await conn.close()
    assert "ciphertext" in stored and secret not in stored
    code, out = await run("rotate")
    assert code == 0 and "re-encrypted 1 key(s)" in out
    code, out = await run("delete", "--user", "cli@test", "--provider", "anthropic")
    assert code == 0
    code, out = await run("delete", "--user", "cli@test", "--provider", "anthropic")
    assert code == 1 and "no anthropic key stored" in out
