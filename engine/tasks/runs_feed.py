"""Run titles and the `runs_changed` feed: every node's sockets of a user hear when one of
their runs is created, renamed, archived or deleted (server/realtime/runs_feed.py delivers it)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from engine.providers.parts import text_of
from engine.redis_batch import send
from engine.redis_keys import RedisKeys

log = logging.getLogger(__name__)

TITLE_CHARS = 80
_SPACE = re.compile(r"\s+")


def title_from(messages: list[dict[str, Any]], fallback: str = "") -> str:
    """A run's automatic title: its first user message with whitespace collapsed, cut at a
    word boundary to at most TITLE_CHARS characters (with an ellipsis when cut)."""
    first = next((text_of(m.get("content")) for m in messages if m.get("role") == "user"), "")
    text = _SPACE.sub(" ", first).strip()
    if not text:
        return fallback[:TITLE_CHARS]
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[: TITLE_CHARS - 1]
    space = cut.rfind(" ")
    if space >= TITLE_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


async def announce(
    redis: aioredis.Redis,
    keys: RedisKeys,
    user_id: UUID,
    run_id: UUID,
    change: str,
    run: dict[str, Any] | None = None,
) -> None:
    """Tell every node that a run of `user_id` changed. Best effort: a sidebar that misses
    it is only stale until its next list request, so a Redis failure is logged, not raised."""
    message = {"user_id": str(user_id), "run_id": str(run_id), "change": change, "run": run}
    try:
        raw = json.dumps(message, separators=(",", ":"))
        await send(redis, "PUBLISH", keys.runs_changed_channel(), raw)
    except (RedisError, OSError) as exc:
        log.warning("runs_changed not announced (%s)", type(exc).__name__)
