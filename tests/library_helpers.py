"""Helpers of the prompt-library tests: an HTTP client that speaks to the test server."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest_asyncio

from server.protocol.contract import HTTP_ROUTES
from tests.conftest import Server

SIM = {"max_tokens": 4, "tokens_per_second": 0}
# Each route of the typed protocol as a pattern, so every answer a test reads is checked
# against its model (extra keys forbidden): the protocol's schema cannot drift from it.
_ROUTES = [
    (method, re.compile("^" + re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(path)) + "$"), answer)
    for method, path, answer in (
        (*key.split(" ", 1), answer) for key, (_body, answer) in HTTP_ROUTES.items()
    )
]


def check_answer(method: str, path: str, data: Any) -> None:
    """Validate a 2xx answer against the model its route names in engine.protocol.responses."""
    bare = path.split("?", 1)[0]
    for route_method, pattern, answer in _ROUTES:
        if route_method == method and pattern.match(bare):
            if answer is not None:
                answer.model_validate(data)
            return
    raise AssertionError(f"{method} {bare} is not in the typed protocol")


@pytest_asyncio.fixture
async def db(server: Server) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(server.settings.database_url)
    yield connection
    await connection.close()


@dataclass
class Api:
    """One user's view of the HTTP API."""

    http: aiohttp.ClientSession
    server: Server
    key: str
    user_id: uuid.UUID

    async def call(
        self, method: str, path: str, body: Any = None, expect: int | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with self.http.request(
            method, self.server.url + path, json=body, headers=headers
        ) as resp:
            data = await resp.json() if resp.status != 204 else None
            if resp.status < 300:
                check_answer(method, path, data)
            if expect is not None:
                assert resp.status == expect, (resp.status, data)
            if resp.status >= 400:
                text = json.dumps(data)
                assert "Traceback" not in text and 'File "' not in text, data
            return data if expect is not None else (resp.status, data)

    async def execute(self, body: dict[str, Any]) -> dict[str, Any]:
        status, data = await self.call("POST", "/v1/executions", body)
        return {"status": status, **data}

    async def run(self, body: dict[str, Any]) -> dict[str, Any]:
        """Execute over Socket.IO and wait for `task_done`."""
        client = await self.server.client(self.key)
        ack = await client.call("execute", body)
        assert ack["ok"], ack
        return await client.wait_done(ack["task_id"])


async def api_for(http: aiohttp.ClientSession, server: Server, email: str | None = None) -> Api:
    email = email or f"{uuid.uuid4().hex[:8]}@test"
    key = await server.new_key(email)
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
    finally:
        await conn.close()
    return Api(http, server, key, user_id)


def prompt_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Explainer",
        "description": "explains things",
        "tags": ["docs"],
        "messages": [
            {"role": "system", "content": "You are {{persona}}."},
            {"role": "user", "content": "Explain {{ topic }} in {{language}}."},
        ],
        "model": "simulated/explainer",
        "settings": SIM,
        "variables": [
            {"name": "persona", "type": "string", "default": "a teacher"},
            {
                "name": "language",
                "type": "enum",
                "options": ["English", "German"],
                "default": "English",
            },
            {"name": "topic", "type": "string", "required": True},
        ],
    }
    body.update(overrides)
    return body


async def sent_messages(db: asyncpg.Connection, task_id: str) -> list[str]:
    request = await db.fetchval(
        "SELECT request FROM ai_tasks WHERE task_id = $1", uuid.UUID(task_id)
    )
    return [m["content"] for m in json.loads(request)["messages"]]
