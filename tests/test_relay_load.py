"""The relay under a burst: a subscription that waits long for its SUBSCRIBE still answers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from engine.keys import Keys
from engine.stream import relay as relay_module
from engine.stream.records import encode_chunk, encode_done
from engine.stream.relay import Relay
from tests.test_relay import Inbox, _done, redis_client  # noqa: F401


async def test_a_subscribe_queued_behind_others_is_answered(
    redis_client: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under a burst of executes, SUBSCRIBE commands queue for the pub/sub connection; the
    # confirmation timeout must count from when the command went out, and a watch that
    # gives up must hand its subscriber on, never leave the execute without an ack.
    monkeypatch.setattr(relay_module, "SUBSCRIBE_TIMEOUT_S", 0.3)
    keys = Keys(f"t{uuid.uuid4().hex[:8]}:")
    task_id = str(uuid.uuid4())
    history = keys.history(task_id)
    await redis_client.xadd(history, {"r": encode_chunk(task_id, 1, "one")})
    await redis_client.xadd(history, {"r": encode_done(_done(task_id, "one", 1))})

    async def load_final(tid: str) -> dict[str, Any] | None:
        return None

    relay = Relay(redis_client, keys, load_final)
    listener = asyncio.create_task(relay.run())
    inbox = Inbox()
    try:
        async with relay._lock:  # other subscriptions hold the connection for a while
            pending = asyncio.create_task(relay.subscribe(task_id, "s1", inbox))
            await asyncio.sleep(0.8)
        result = await asyncio.wait_for(pending, 10)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await relay.close()
    assert result.status == "completed" and result.last_seq == 1
    assert [e for e, _ in inbox.events] == ["task_chunk", "task_done"]
