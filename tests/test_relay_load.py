"""The relay under a burst: a subscription that waits long for its SUBSCRIBE still answers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from engine.redis_keys import RedisKeys
from engine.stream import watch as watch_module
from engine.stream.records import encode_chunk, encode_done
from engine.stream.relay import Relay
from tests.conftest import Infra
from tests.test_relay import Inbox, _done, redis_client  # noqa: F401

PAUSE_S = 0.8  # Redis holds every command this long: more than twice the confirmation timeout


async def test_a_subscribe_queued_behind_others_is_answered(
    redis_client: Any,  # noqa: F811
    infra: Infra,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under a burst of executes, SUBSCRIBE commands queue for the pub/sub connection and
    # their confirmations come late. Redis itself holds every command for longer than the
    # confirmation timeout here (CLIENT PAUSE, which ends by itself): the confirmation
    # timeout must count from when the command went out, and a watch that gives up must
    # hand its subscriber on, never leave the execute without an ack.
    monkeypatch.setattr(watch_module, "SUBSCRIBE_TIMEOUT_S", 0.3)
    keys = RedisKeys(f"t{uuid.uuid4().hex[:8]}:")
    task_id = str(uuid.uuid4())
    history = keys.history(task_id)
    await redis_client.xadd(history, {"r": encode_chunk(task_id, 1, "one")})
    await redis_client.xadd(history, {"r": encode_done(_done(task_id, "one", 1))})

    async def load_final(tid: str) -> dict[str, Any] | None:
        return None

    # Its own client, named (so connecting waits for Redis to answer CLIENT SETNAME): the
    # relay's first SUBSCRIBE holds the connection for the whole pause.
    relay_redis = aioredis.Redis.from_url(infra.redis_url, client_name="relay-under-load")
    relay = Relay(relay_redis, keys, load_final)
    listener = asyncio.create_task(relay.run())
    inbox, other = Inbox(), Inbox()
    try:
        await redis_client.execute_command("CLIENT", "PAUSE", int(PAUSE_S * 1000), "ALL")
        started = asyncio.get_running_loop().time()
        first = asyncio.create_task(relay.subscribe(str(uuid.uuid4()), "s0", other))
        pending = asyncio.create_task(relay.subscribe(task_id, "s1", inbox))
        result = await asyncio.wait_for(pending, 10)
        waited = asyncio.get_running_loop().time() - started
        await asyncio.wait_for(first, 10)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await relay.close()
        await relay_redis.aclose()
    assert waited >= PAUSE_S * 0.9, "Redis did not hold the commands: the test tests nothing"
    assert result.status == "completed" and result.last_seq == 1
    assert [e for e, _ in inbox.events] == ["task_chunk", "task_done"]
