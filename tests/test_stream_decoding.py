"""Whole provider streams decoded exactly: refusals, blocked prompts, several choices or
candidates, several messages in one body, usage only at a message's start, and streams that
end on an event boundary before their terminal event. Pure, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from engine.providers.anthropic_events import AnthropicEvents
from engine.providers.google_events import GoogleEvents
from engine.providers.sse import OpenAIEvents, SSEDecoder
from engine.usage import Usage
from tests import stream_bodies as bodies


def decode(reader: Any, body: bytes, size: int = 11) -> str:
    """The text of `body` fed in `size`-byte pieces, as the adapters read it."""
    decoder, text = SSEDecoder(), []
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    for event, data in [e for p in pieces for e in decoder.feed(p)] + decoder.close():
        got = reader.on_event(event, data)
        text.extend([got] if isinstance(got, str) else [d for d in got or [] if isinstance(d, str)])
    return "".join(text)


def test_openai_refusal_is_its_own_field_and_content_filter() -> None:
    reader = OpenAIEvents()
    assert decode(reader, bodies.OPENAI_REFUSAL) == ""
    assert reader.refusal == "I'm sorry, I can't help with that."
    assert reader.finish_reason == "content_filter" and reader.usage == Usage(6, 9, 0)


def test_openai_takes_choice_zero_only() -> None:
    reader = OpenAIEvents()
    assert decode(reader, bodies.OPENAI_TWO_CHOICES) == "Hello there"
    assert reader.finish_reason == "stop" and reader.refusal is None


def test_anthropic_several_messages_in_one_body() -> None:
    reader = AnthropicEvents()
    assert decode(reader, bodies.ANTHROPIC_TWO_MESSAGES) == "Let me look. Found it."
    assert reader.finish_reason == "length"  # the last message's stop reason
    assert reader.usage == Usage(40, 9, 0)  # summed over both messages


def test_anthropic_cut_in_the_second_message_is_not_finished() -> None:
    body = bodies.ANTHROPIC_TWO_MESSAGES
    cut = body[: body.rindex(b"event: message_delta")]
    reader = AnthropicEvents()
    assert decode(reader, cut) == "Let me look. Found it."
    assert reader.finish_reason is None


def test_anthropic_usage_only_in_message_start_is_kept() -> None:
    reader = AnthropicEvents()
    assert decode(reader, bodies.ANTHROPIC_START_USAGE_ONLY) == "Short."
    assert reader.usage == Usage(12, 7, 0) and reader.finish_reason == "stop"


def test_anthropic_refusal() -> None:
    reader = AnthropicEvents()
    assert decode(reader, bodies.ANTHROPIC_REFUSAL) == "I can"
    assert reader.finish_reason == "content_filter" and reader.refusal == "refusal"


def test_gemini_blocked_prompt() -> None:
    reader = GoogleEvents()
    assert decode(reader, bodies.GEMINI_BLOCKED_PROMPT) == ""
    assert reader.finish_reason == "content_filter"
    assert reader.refusal == "PROHIBITED_CONTENT"


def test_gemini_safety_stop() -> None:
    reader = GoogleEvents()
    assert decode(reader, bodies.GEMINI_SAFETY) == "Here is"
    assert reader.finish_reason == "content_filter" and reader.refusal == "SAFETY"


def test_gemini_takes_candidate_zero_only() -> None:
    reader = GoogleEvents()
    assert decode(reader, bodies.GEMINI_TWO_CANDIDATES) == "Hello there"
    assert reader.finish_reason == "stop" and reader.usage == Usage(6, 4, 0)


@pytest.mark.parametrize(
    ("reader", "body"),
    [
        (OpenAIEvents(), bodies.OPENAI_NO_END),
        (AnthropicEvents(), bodies.ANTHROPIC_NO_END),
        (GoogleEvents(), bodies.GEMINI_NO_END),
    ],
    ids=["openai", "anthropic", "google"],
)
def test_a_body_without_its_terminal_event_is_not_finished(reader: Any, body: bytes) -> None:
    assert decode(reader, body) == "Half an answer"
    assert reader.finish_reason is None  # the runner ends it as provider_unavailable
