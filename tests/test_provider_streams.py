"""Recorded-shape provider streams end to end: each fake answers a stored body as it is,
and the task ends as the decoding rules say (docs/providers.md)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.settings import Settings
from tests import stream_bodies as bodies
from tests.conftest import Server, assert_intact
from tests.provider_env import Fakes, event_kinds, provider_server, task_row

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "google": "google/gemini-2.0-flash",
}
REFUSALS = {
    "openai": (bodies.OPENAI_REFUSAL, "", "I'm sorry, I can't help with that."),
    "anthropic": (bodies.ANTHROPIC_REFUSAL, "I can", "refusal"),
    "google": (bodies.GEMINI_BLOCKED_PROMPT, "", "PROHIBITED_CONTENT"),
}
NO_END = {
    "openai": bodies.OPENAI_NO_END,
    "anthropic": bodies.ANTHROPIC_NO_END,
    "google": bodies.GEMINI_NO_END,
}
each = pytest.mark.parametrize("provider", list(MODELS))


async def answer(server: Server, fk: Fakes, provider: str, body: bytes) -> dict[str, Any]:
    """Run one task whose provider answers `body` as it is."""
    fk.of(provider).bodies["recorded"] = body
    client = await server.client(await server.new_key())
    payload = {
        "model": f"{MODELS[provider]}~body=recorded",
        "messages": [{"role": "user", "content": "hello"}],
    }
    ack = await client.call("execute", payload)
    assert ack["ok"], ack
    done: dict[str, Any] = await client.wait_done(ack["task_id"])
    assert_intact(client, ack["task_id"])
    return done


@each
async def test_refusal_is_reported_with_content_filter(
    srv: Server, fk: Fakes, provider: str
) -> None:
    body, text, refusal = REFUSALS[provider]
    done = await answer(srv, fk, provider, body)
    assert done["status"] == "completed" and done["finish_reason"] == "content_filter"
    assert done["refusal"] == refusal and done["text"] == text
    kinds = await event_kinds(srv, done["task_id"])
    assert "refusal" in kinds


@each
async def test_body_without_terminal_event_is_provider_unavailable(
    srv: Server, fk: Fakes, provider: str
) -> None:
    done = await answer(srv, fk, provider, NO_END[provider])
    assert done["status"] == "failed" and done["finish_reason"] == "error"
    assert done["error"]["code"] == "provider_unavailable"
    assert done["text"] == "Half an answer"
    row = await task_row(srv, done["task_id"])
    assert row["response_text"] == "Half an answer"


async def test_anthropic_body_with_two_messages_is_read_whole(srv: Server, fk: Fakes) -> None:
    done = await answer(srv, fk, "anthropic", bodies.ANTHROPIC_TWO_MESSAGES)
    assert done["status"] == "completed" and done["finish_reason"] == "length"
    assert done["text"] == "Let me look. Found it."
    assert done["usage"] == {
        "input_tokens": 40,
        "output_tokens": 9,
        "total_tokens": 49,
        "reasoning_tokens": 0,
    }


async def test_anthropic_usage_in_message_start_only_is_kept(srv: Server, fk: Fakes) -> None:
    done = await answer(srv, fk, "anthropic", bodies.ANTHROPIC_START_USAGE_ONLY)
    assert done["usage"] == {
        "input_tokens": 12,
        "output_tokens": 7,
        "total_tokens": 19,
        "reasoning_tokens": 0,
    }
    assert (await task_row(srv, done["task_id"]))["usage_source"] == "provider"


@pytest.mark.parametrize(
    ("provider", "body"),
    [("openai", bodies.OPENAI_TWO_CHOICES), ("google", bodies.GEMINI_TWO_CANDIDATES)],
    ids=["openai", "google"],
)
async def test_several_choices_are_never_mixed(
    srv: Server, fk: Fakes, provider: str, body: bytes
) -> None:
    done = await answer(srv, fk, provider, body)
    assert done["status"] == "completed" and done["text"] == "Hello there"
    assert done["finish_reason"] == "stop"


async def test_a_slow_tool_call_moves_the_idle_deadline(settings: Settings, fk: Fakes) -> None:
    """Tool-call pieces are progress: a call streamed for longer than the first-token limit,
    with short gaps, completes (it used to end `timeout` after its first text)."""
    tools = [{"name": "weather", "description": "", "parameters": {"type": "object"}}]
    payload = {
        "model": "anthropic/claude-haiku-4-5~tokens=1~tools=3~delay_ms=300",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": tools,
    }
    overrides = {"first_token_timeout_s": 1.5, "idle_timeout_s": 1.2}
    async with provider_server(settings, fk, **overrides) as server:
        client = await server.client(await server.new_key())
        ack = await client.call("execute", payload)
        assert ack["ok"], ack
        done = await client.wait_done(ack["task_id"])
    assert done["status"] == "completed", done["error"]
    assert done["finish_reason"] == "tool_calls" and len(done["tool_calls"]) == 3
