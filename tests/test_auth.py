"""JWT authentication (HS256, pinned) over real Socket.IO and HTTP: accepted tokens create
the user on first sight; every kind of bad token is refused with `unauthorized`."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest
import pytest_asyncio
import socketio
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from engine.settings import Settings
from tests.conftest import Server, start_server, stop_server

SECRET = "test-jwt-secret-" + "s" * 64
AUDIENCE = "authenticated"
ISSUER = "https://example.supabase.co/auth/v1"


@pytest_asyncio.fixture
async def jwt_server(settings: Settings) -> AsyncIterator[Server]:
    srv = await start_server(
        settings.model_copy(
            update={"jwt_secret": SecretStr(SECRET), "jwt_audience": AUDIENCE, "jwt_issuer": ISSUER}
        )
    )
    try:
        yield srv
    finally:
        await stop_server(srv)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": str(uuid.uuid4()),
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + 600,
        "email": f"{uuid.uuid4().hex[:6]}@jwt.test",
        "role": "authenticated",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any]) -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


def rs_signed(payload: dict[str, Any]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(payload, key, algorithm="RS256")


async def connect_error(url: str, tok: str) -> Any:
    """The `connect_error` data of a refused connection; None when it was accepted."""
    sio = socketio.AsyncClient(reconnection=False)
    seen: list[Any] = []
    sio.on("connect_error", lambda data=None: seen.append(data))
    try:
        await sio.connect(url, auth={"token": tok}, transports=["websocket"], wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        assert seen, "refused without connect_error data"
        return seen[0]["data"]
    await sio.disconnect()
    return None


async def test_valid_jwt_creates_the_user_and_streams(jwt_server: Server) -> None:
    payload = claims()
    client = await jwt_server.client(token(payload))
    ack = await client.call(
        "execute",
        {
            "messages": [{"role": "user", "content": "hi"}],
            "model": "simulated/x",
            "settings": {"max_tokens": 3, "tokens_per_second": 0},
        },
    )
    assert ack["ok"], ack
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "completed"
    conn = await asyncpg.connect(jwt_server.settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT id, email FROM users WHERE id = $1", uuid.UUID(payload["sub"])
        )
        owner = await conn.fetchval(
            "SELECT user_id FROM ai_tasks WHERE task_id = $1", uuid.UUID(ack["task_id"])
        )
    finally:
        await conn.close()
    assert row is not None and row["email"] == payload["email"]
    assert owner == row["id"]
    # The same sub again is the same user; over HTTP too.
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{jwt_server.url}/v1/tasks/{ack['task_id']}",
            headers={"Authorization": f"Bearer {token(claims(sub=payload['sub']))}"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()


BAD_TOKENS = {
    "alg none": lambda: unsigned(claims()),
    "wrong secret": lambda: token(claims(), "another-secret-" + "x" * 64),
    "expired": lambda: token(claims(exp=int(time.time()) - 60)),
    "not yet valid": lambda: token(claims(nbf=int(time.time()) + 600)),
    "wrong audience": lambda: token(claims(aud="someone-else")),
    "no audience": lambda: token(claims(aud=None)),
    "wrong issuer": lambda: token(claims(iss="https://evil.example")),
    "no exp": lambda: token(claims(exp=None)),
    "no sub": lambda: token(claims(sub=None)),
    "sub not a uuid": lambda: token(claims(sub="admin")),
    "RS256 signed": lambda: rs_signed(claims()),
    "HS512": lambda: jwt.encode(claims(), SECRET, algorithm="HS512"),
    "garbage": lambda: "aaa.bbb.ccc",
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_bad_jwt_is_refused(jwt_server: Server, kind: str) -> None:
    bad = BAD_TOKENS[kind]()
    err = await connect_error(jwt_server.url, bad)
    assert err == {"code": "unauthorized", "message": "missing or invalid token"}, (kind, err)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{jwt_server.url}/v1/tasks/{uuid.uuid4()}", headers={"Authorization": f"Bearer {bad}"}
        ) as resp,
    ):
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_deleted_user_token_is_refused_and_not_recreated(jwt_server: Server) -> None:
    payload = claims()
    await (await jwt_server.client(token(payload))).sio.disconnect()
    conn = await asyncpg.connect(jwt_server.settings.database_url)
    try:
        await conn.execute(
            "UPDATE users SET deleted_at = now() WHERE id = $1", uuid.UUID(payload["sub"])
        )
    finally:
        await conn.close()
    err = await connect_error(jwt_server.url, token(payload))
    assert err is not None and err["code"] == "unauthorized"


async def test_jwt_refused_when_no_secret_is_configured(server: Server) -> None:
    err = await connect_error(server.url, token(claims()))
    assert err is not None and err["code"] == "unauthorized"


async def test_socket_is_closed_when_its_jwt_expires(settings: Settings) -> None:
    srv = await start_server(
        settings.model_copy(
            update={
                "jwt_secret": SecretStr(SECRET),
                "jwt_audience": AUDIENCE,
                "jwt_issuer": ISSUER,
                "auth_recheck_s": 0.3,
            }
        )
    )
    try:
        short = await srv.client(token(claims(exp=int(time.time()) + 4)))
        long = await srv.client(token(claims()))
        deadline = time.monotonic() + 15
        while short.sio.connected:
            assert time.monotonic() < deadline, "socket outlived its token"
            await asyncio.sleep(0.1)
        assert long.sio.connected
    finally:
        await stop_server(srv)


async def test_first_sight_from_many_sockets_at_once(jwt_server: Server) -> None:
    tok = token(claims())
    errors = await asyncio.gather(*(connect_error(jwt_server.url, tok) for _ in range(10)))
    assert errors == [None] * 10
    conn = await asyncpg.connect(jwt_server.settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 1
    finally:
        await conn.close()
