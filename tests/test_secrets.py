"""Plant secrets (API keys, JWTs and the JWT secret, a provider key, password-looking values)
in every place a client can put them, then grep everything the server said (acks, events,
HTTP error bodies, task views) and everything it logged: no secret, no stack trace."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
import pytest_asyncio
from pydantic import SecretStr

from engine.settings import Settings
from tests.conftest import Server, start_server, stop_server
from tests.fakes.openai_server import FakeOpenAI
from tests.test_auth import connect_error

JWT_SECRET = "PLANTED-jwt-secret-" + "j" * 64
PROVIDER_KEY = "bad-key"  # the fake echoes this one in its 401 body, as OpenAI does
BAD_API_KEY = "ps_PLANTEDnotARealKey0123456789abcdefghijkl"
PASSWORD = "PLANTED-hunter2-password"


@pytest_asyncio.fixture
async def leaky(settings: Settings) -> AsyncIterator[tuple[Server, FakeOpenAI]]:
    async with FakeOpenAI() as fake:
        srv = await start_server(
            settings.model_copy(
                update={
                    "jwt_secret": SecretStr(JWT_SECRET),
                    "openai_api_key": SecretStr(PROVIDER_KEY),
                    "openai_base_url": fake.base_url,
                }
            )
        )
        try:
            yield srv, fake
        finally:
            await stop_server(srv)


def jwt_for(sub: str, secret: str = JWT_SECRET, **extra: Any) -> str:
    return jwt.encode(
        {"sub": sub, "exp": int(time.time()) + 600, **extra}, secret, algorithm="HS256"
    )


async def test_no_secret_reaches_clients_or_logs(
    leaky: tuple[Server, FakeOpenAI], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, fake = leaky
    said: list[Any] = []
    good_key = await server.new_key("secrets@test")
    good_jwt = jwt_for(str(uuid.uuid4()))
    forged_jwt = jwt_for(str(uuid.uuid4()), secret="PLANTED-forger-" + "f" * 64)
    expired_jwt = jwt_for(str(uuid.uuid4()), exp=int(time.time()) - 10)
    for token in (BAD_API_KEY, forged_jwt, expired_jwt, "Bearer " + BAD_API_KEY):
        said.append(await connect_error(server.url, token))

    client = await server.client(good_key)
    jwt_client = await server.client(good_jwt)
    hostile = [
        {"messages": [{"role": "user", "content": "x"}], "password": PASSWORD},
        {
            "messages": [{"role": "user", "content": "x"}],
            "model": "simulated/x",
            "variables": {"db_password": {"value": PASSWORD}},
        },
        {"messages": [{"role": "nobody", "content": PASSWORD}], "model": "simulated/x"},
        {"task_id": PASSWORD},
        {"task_id": good_key},
        {"api_key": BAD_API_KEY},
    ]
    for payload in hostile:
        for event in ("execute", "subscribe", "cancel"):
            said.append(await client.call(event, payload))
            said.append(await jwt_client.call(event, payload))

    # A provider that rejects the key and echoes it back, as OpenAI does.
    ack = await client.call(
        "execute", {"messages": [{"role": "user", "content": "hi"}], "model": "openai/gpt-4o-mini"}
    )
    said.append(ack)
    done = await client.wait_done(ack["task_id"])
    said.append(done)
    assert done["status"] == "failed" and done["error"]["code"] == "provider_error"
    assert fake.requests, "the provider was called"

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        for token in (BAD_API_KEY, forged_jwt, expired_jwt):
            async with http.get(
                f"{server.url}/v1/me", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 401
                said.append(await resp.text())
        for path in (
            f"/v1/tasks/{ack['task_id']}",
            f"/v1/tasks/{ack['task_id']}/events",
            "/v1/keys",
            "/v1/me",
        ):
            async with http.get(
                server.url + path, headers={"Authorization": f"Bearer {good_key}"}
            ) as resp:
                said.append(await resp.text())
        async with http.post(
            f"{server.url}/v1/executions",
            data=json.dumps(hostile[0]),
            headers={"Authorization": f"Bearer {good_key}"},
        ) as resp:
            said.append(await resp.text())

    told = json.dumps(said)
    assert "JWT refused" in caplog.text  # the log was captured, so its silence means something
    logged = caplog.text + "".join((r.exc_text or "") + str(r.args) for r in caplog.records)
    secrets = [
        good_key,
        good_key[10:],
        BAD_API_KEY,
        good_jwt,
        forged_jwt,
        expired_jwt,
        JWT_SECRET,
        PASSWORD,
        "Incorrect API key provided",
        f"{PROVIDER_KEY}.",
    ]
    for secret in secrets:
        assert secret not in told, f"a client was told {secret[:12]}..."
        assert secret not in logged, f"the log has {secret[:12]}..."
    assert "Traceback" not in told and 'File "' not in told
    assert "Traceback" not in logged
