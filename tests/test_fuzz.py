"""Hypothesis sends arbitrary JSON and arbitrary bytes to every Socket.IO event and HTTP
route: every answer is one of our stable errors (never a crash, a 5xx or a stack trace),
the server keeps serving, and its memory stays flat across the run.

Hypothesis runs in a thread with its own event loop and its own clients, while the server
under test keeps running on the test's loop: real sockets between them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Server

# The server is real and the machine is shared: slow examples are expected.
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
EVENTS = ["execute", "subscribe", "unsubscribe", "cancel"]
CODES = {
    "invalid_request",
    "payload_too_large",
    "not_found",
    "missing_variables",
    "quota_exceeded",
    "rate_limited",
    "unauthorized",
}
HTTP_ROUTES = [  # (method, path); {x} is replaced by fuzzed text
    ("POST", "/v1/executions"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/tasks/{x}"),
    ("GET", "/v1/tasks/{x}/events"),
    ("POST", "/v1/tasks/{x}/cancel"),
    ("GET", "/v1/runs/{x}"),
    ("DELETE", "/v1/keys/{x}"),
    ("GET", "/v1/tasks/{x}/stream?after_seq={x}"),
    ("GET", "/v1/usage?from={x}&to={x}"),
    ("GET", "/v1/keys?limit={x}&cursor={x}"),
    ("GET", "/v1/runs?limit={x}&cursor={x}&q={x}&archived={x}"),
    ("PATCH", "/v1/runs/{x}"),
    ("DELETE", "/v1/runs/{x}"),
    ("GET", "/v1/tasks?run_id={x}&prompt_id={x}&status={x}&from={x}&to={x}&cursor={x}"),
    ("GET", "/v1/tasks?limit={x}&from={x}"),
    ("GET", "/v1/prompts/{x}/stats?from={x}&to={x}"),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=30,
)
# Payloads that are shaped like the real ones, with wrong values in them.
keys = st.sampled_from(
    [
        "task_id",
        "after_seq",
        "messages",
        "model",
        "settings",
        "variables",
        "run_id",
        "prompt_id",
        "builtin",
        "version",
        "request_id",
        "scope",
        "track_in_runs",
        "broker_values",
        "priority",
        "title",
        "archived",
    ]
)
near_valid = st.dictionaries(keys, json_values, max_size=6)
payloads = json_values | near_valid | st.binary(max_size=200)


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def check_ack(ack: Any) -> None:
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), ack
    if not ack["ok"]:
        assert ack["error"]["code"] in CODES, ack
    text = json.dumps(ack)
    assert "Traceback" not in text and 'File "' not in text


async def fuzz_socket(url: str, key: str, examples: int) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, auth={"token": key}, transports=["websocket"], wait_timeout=10)
    loop = asyncio.get_running_loop()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=SLOW_OK)
    @given(event=st.sampled_from(EVENTS), payload=payloads)
    def one(event: str, payload: Any) -> None:
        ack = asyncio.run_coroutine_threadsafe(sio.call(event, payload, timeout=10), loop)
        check_ack(ack.result(20))

    try:
        await asyncio.to_thread(one)
    finally:
        await sio.disconnect()


async def fuzz_http(url: str, key: str, examples: int) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:

        async def send(method: str, path: str, body: bytes) -> tuple[int, Any, str]:
            async with http.request(
                method,
                url + path,
                data=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            ) as r:
                return r.status, r.content_type, await r.text()

        @settings(
            max_examples=examples, deadline=None, database=None, suppress_health_check=SLOW_OK
        )
        @given(
            route=st.sampled_from(HTTP_ROUTES),
            x=st.text(max_size=30),
            body=st.binary(max_size=200)
            | json_values.map(lambda v: json.dumps(v).encode())
            | near_valid.map(lambda v: json.dumps(v).encode()),
        )
        def one(route: tuple[str, str], x: str, body: bytes) -> None:
            method, template = route
            path = template.replace("{x}", _quote(x))
            status, ctype, text = asyncio.run_coroutine_threadsafe(
                send(method, path, body), loop
            ).result(30)
            assert status < 500, (route, x, status, text)
            assert "Traceback" not in text and 'File "' not in text
            if status >= 400:
                assert ctype == "application/json", (route, status, text)
                assert json.loads(text)["error"]["code"] in CODES, text

        await asyncio.to_thread(one)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


async def assert_still_serving(server: Server, key: str) -> None:
    client = await server.client(key)
    ack = await client.call(
        "execute",
        {
            "messages": [{"role": "user", "content": "still?"}],
            "model": "simulated/f",
            "settings": {"max_tokens": 3, "tokens_per_second": 0},
        },
    )
    assert ack["ok"], ack
    assert (await client.wait_done(ack["task_id"]))["status"] == "completed"


async def run_round(
    server: Server, key: str, examples: int, fuzzers: list[Callable[..., Any]]
) -> None:
    for fuzz in fuzzers:
        await fuzz(server.url, key, examples)


async def test_fuzz_every_event_and_route_memory_flat(server: Server) -> None:
    key = await server.new_key("fuzz@test")
    fuzzers = [fuzz_socket, fuzz_http]
    await run_round(server, key, 40, fuzzers)  # warm-up: caches, pools, imports
    before = rss_bytes()
    await run_round(server, key, 150, fuzzers)
    grown = rss_bytes() - before
    await assert_still_serving(server, key)
    # Generous: the test process also holds Hypothesis and the clients.
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
