"""The cap on subscriptions to one task on one node (`MAX_WATCHERS_PER_TASK`).

Every chunk of a task is written to each of its subscribers, so a task followed by many
sockets costs the node's event loop in proportion: one user watching each of their tasks
from dozens of sockets slowed every other user's first chunk. Past the cap a subscribe (a
socket's `subscribe`, an `execute`'s own subscription, an SSE stream) is refused
`rate_limited`, and the subscriptions already there are kept.
"""

from __future__ import annotations

from engine.errors import RateLimited
from engine.settings import Settings
from engine.stream.relay import Relay


def check_watchers(relay: Relay, settings: Settings, task_id: str, key: str) -> None:
    """Refuse a new subscription `key` to the task past the cap; subscribing again with the
    same key replaces a subscription and is always allowed."""
    cap = settings.max_watchers_per_task
    if relay.delivers_to(task_id, key) or relay.watchers(task_id) < cap:
        return
    raise RateLimited(
        f"at most {cap} subscriptions to one task on a node",
        details={"limit": "watchers_per_task", "max": cap, "retry_after_ms": 1000},
    )
