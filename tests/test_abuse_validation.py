"""A hostile output validation cannot freeze the server or delay another user's tasks.

The attack: a prompt whose JSON Schema has `"pattern": "^(a+)+$"` and a model (the fake
OpenAI server in echo mode) that answers 28 `a`s and a `!`: Python's `re` backtracks for
many seconds. It runs in a worker process with a deadline; `/healthz` stays fast meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from engine.settings import Settings
from tests.conftest import Server
from tests.library_helpers import Api, api_for
from tests.provider_env import Fakes, fakes, provider_server

EVIL = {
    "type": "json_schema",
    "schema": {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(b+)+$": {"type": "string"}},
    },
}
EVIL_ANSWER = json.dumps({"s": "a" * 28 + "!"})
TIMEOUT_S = 1.0


@pytest_asyncio.fixture
async def echo_server(settings: Settings) -> AsyncIterator[tuple[Server, Fakes]]:
    async with fakes() as f, provider_server(settings, f, validation_timeout_s=TIMEOUT_S) as srv:
        yield srv, f


async def echo_prompt(user: Api, validations: list[dict[str, Any]]) -> str:
    body = {
        "name": "Echo",
        "messages": [{"role": "user", "content": "{{ body }}"}],
        "model": "openai/fake:echo=1",
        "variables": [{"name": "body", "type": "string", "required": True}],
        "validations": validations,
    }
    created = await user.call("POST", "/v1/prompts", body, expect=201)
    return str(created["id"])


def ask(prompt_id: str, body: str) -> dict[str, Any]:
    return {"prompt_id": prompt_id, "version": 1, "variables": {"body": body}}


async def healthz_worst(http: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> float:
    """The slowest /healthz answer while `stop` is not set."""
    worst = 0.0
    while not stop.is_set():
        started = time.monotonic()
        async with http.get(url + "/healthz") as resp:
            assert resp.status == 200
        worst = max(worst, time.monotonic() - started)
        await asyncio.sleep(0.02)
    return worst


async def test_catastrophic_schema_pattern_times_out_and_never_freezes_the_server(
    echo_server: tuple[Server, Fakes], http: aiohttp.ClientSession
) -> None:
    server, _ = echo_server
    user = await api_for(http, server)
    prompt_id = await echo_prompt(user, [EVIL])
    stop = asyncio.Event()
    probe = asyncio.create_task(healthz_worst(http, server.url, stop))
    try:
        done = await user.run(ask(prompt_id, EVIL_ANSWER))
    finally:
        stop.set()
    worst = await probe
    assert done["status"] == "completed" and done["text"] == EVIL_ANSWER
    assert done["validation"]["status"] == "failed"
    [error] = done["validation"]["errors"]
    assert error["reason"] == "timeout" and error["type"] == "timeout"
    assert worst < 0.5, f"/healthz took {worst:.2f} s during the validation"
    view = await user.call("GET", f"/v1/tasks/{done['task_id']}", expect=200)
    assert view["validation"] == done["validation"]
    # The pool replaced the killed worker: a fair answer still validates.
    fine = await user.run(
        {"prompt_id": prompt_id, "version": 1, "variables": {"body": '{"s": "aaa"}'}}
    )
    assert fine["validation"] == {"status": "passed", "errors": []}


async def test_one_users_slow_validations_do_not_delay_another_users(
    echo_server: tuple[Server, Fakes], http: aiohttp.ClientSession
) -> None:
    server, _ = echo_server
    attacker, victim = await api_for(http, server), await api_for(http, server)
    evil_prompt = await echo_prompt(attacker, [EVIL])
    fair_prompt = await echo_prompt(victim, [EVIL])
    client = await server.client(attacker.key)
    acks = [await client.call("execute", ask(evil_prompt, EVIL_ANSWER)) for _ in range(6)]
    assert all(a["ok"] for a in acks), acks
    attack_ids = [a["task_id"] for a in acks]
    await client.wait_done(attack_ids[0], timeout=30)  # the attack is under way
    started = time.monotonic()
    done = await victim.run(
        {"prompt_id": fair_prompt, "version": 1, "variables": {"body": '{"s": "aa"}'}}
    )
    waited = time.monotonic() - started
    assert done["validation"]["status"] == "passed"
    # Six validations of TIMEOUT_S each are queued for the attacker; the victim waits at
    # most about one of them.
    assert waited < 2 * TIMEOUT_S + 1.0, f"the victim's task took {waited:.2f} s"
    assert sum(t in client.done for t in attack_ids) < len(attack_ids)
    for task_id in attack_ids:
        attacked = await client.wait_done(task_id, timeout=60)
        assert attacked["validation"]["errors"][0]["reason"] == "timeout"
