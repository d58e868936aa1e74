"""HTTP floods: a per-user request rate shared by every node, a per-address rate for
requests without (valid) credentials, and caps on a user's keys and orgs, each under a
concurrent burst."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest_asyncio

from engine.settings import Settings
from tests.conftest import Server, start_server, stop_server

USER_LIMIT = 50
ADDRESS_LIMIT = 20


@pytest_asyncio.fixture
async def limited(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "max_http_requests_per_minute": USER_LIMIT,
            "max_http_requests_per_minute_per_address": ADDRESS_LIMIT,
            "max_keys_per_user": 5,
            "max_orgs_per_user": 3,
        }
    )


async def fresh_window() -> None:
    """Start a burst well inside one minute's window (the counters are per minute)."""
    while time.time() % 60 > 45:
        await asyncio.sleep(0.5)


async def burst(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    n: int,
    token: str | None = None,
    body: Any = None,
) -> Counter[str]:
    """Send n requests at once; count answers by status and error code."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def one() -> str:
        async with http.request(method, url, headers=headers, json=body) as resp:
            data = await resp.json()
            if resp.status == 429:
                assert data["error"]["code"] == "rate_limited"
                assert 1 <= int(resp.headers["Retry-After"]) <= 60
                assert data["error"]["details"]["retry_after_ms"] > 0
            if resp.status < 300:
                return str(resp.status)
            return f"{resp.status} {data['error']['code']}"

    return Counter(await asyncio.gather(*(one() for _ in range(n))))


async def test_one_users_burst_is_limited_over_every_node(
    limited: Settings, http: aiohttp.ClientSession
) -> None:
    a, b = await start_server(limited), await start_server(limited)
    try:
        key, other = await a.new_key(), await a.new_key()
        await fresh_window()
        on_a = await burst(http, "GET", f"{a.url}/v1/me", 60, key)
        on_b = await burst(http, "GET", f"{b.url}/v1/me", 60, key)
        assert on_a["200"] + on_b["200"] == USER_LIMIT, (on_a, on_b)
        assert on_a["429 rate_limited"] + on_b["429 rate_limited"] == 120 - USER_LIMIT
        # Another user is not affected, nor are health checks.
        assert (await burst(http, "GET", f"{b.url}/v1/me", 5, other))["200"] == 5
        assert (await burst(http, "GET", f"{a.url}/healthz", 80))["200"] == 80
    finally:
        await stop_server(a)
        await stop_server(b)


async def test_unauthenticated_requests_and_bad_tokens_are_limited_per_address(
    limited: Settings, http: aiohttp.ClientSession
) -> None:
    srv = await start_server(limited)
    try:
        await fresh_window()
        guesses = await burst(http, "GET", f"{srv.url}/v1/me", 40, "ps_guessed-key")
        assert guesses["401 unauthorized"] == ADDRESS_LIMIT, guesses
        assert guesses["429 rate_limited"] == 40 - ADDRESS_LIMIT
        anonymous = await burst(http, "GET", f"{srv.url}/v1/protocol.json", 5)
        assert anonymous["429 rate_limited"] == 5
        # A user with a valid key is counted on their own.
        assert (await burst(http, "GET", f"{srv.url}/v1/me", 5, await srv.new_key()))["200"] == 5
    finally:
        await stop_server(srv)


async def test_keys_and_orgs_per_user_are_capped_under_a_burst(
    limited: Settings, http: aiohttp.ClientSession
) -> None:
    srv: Server = await start_server(limited.model_copy(update={"max_http_requests_per_minute": 0}))
    try:
        key = await srv.new_key()
        keys = await burst(http, "POST", f"{srv.url}/v1/keys", 30, key, {"name": "k"})
        assert keys["201"] == 4, keys  # 5 live keys with the first one
        assert keys["400 invalid_request"] == 26
        orgs = await burst(http, "POST", f"{srv.url}/v1/orgs", 20, key, {"name": "o"})
        assert orgs["201"] == 3 and orgs["400 invalid_request"] == 17, orgs
        async with http.post(
            f"{srv.url}/v1/orgs", json={"name": "o"}, headers={"Authorization": f"Bearer {key}"}
        ) as resp:
            details = (await resp.json())["error"]["details"]
            assert details["limit"] == "orgs" and details["max"] == 3
    finally:
        await stop_server(srv)
