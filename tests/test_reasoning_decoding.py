"""Reasoning decoded from each provider's wire events, and the `reasoning` setting mapped onto
each wire format or refused: pure, no sockets (event sequences written for these tests in the
shapes the providers document)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.errors import InvalidRequest
from engine.providers.anthropic import AnthropicProvider, build_params
from engine.providers.anthropic_events import AnthropicEvents
from engine.providers.base import Provider, ProviderRequest
from engine.providers.google import GoogleProvider, build_body
from engine.providers.google_events import GoogleEvents
from engine.providers.openai import OpenAIProvider, reasoning_params
from engine.providers.reasoning import ReasoningDelta
from engine.providers.simulated import SimulatedProvider
from engine.providers.sse import OpenAIEvents, SSEDecoder
from engine.providers.toolcalls import ToolCallDelta, assistant_message, tool_message
from engine.providers.toolwire import anthropic_messages


def _feed(reader: Any, body: bytes, size: int = 5) -> list[Any]:
    """Decode `body` fed in `size`-byte pieces (events split across reads)."""
    decoder, out = SSEDecoder(), []
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    for event, data in [e for p in pieces for e in decoder.feed(p)] + decoder.close():
        got = reader.on_event(event, data)
        out.extend([got] if isinstance(got, str) else got or [])
    return out


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = b""
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out += f"{head}data: {json.dumps(data)}\n\n".encode()
    return out


def _split(deltas: list[Any]) -> tuple[str, str, list[ToolCallDelta]]:
    text = "".join(d for d in deltas if isinstance(d, str))
    thought = "".join(d.text for d in deltas if isinstance(d, ReasoningDelta))
    return text, thought, [d for d in deltas if isinstance(d, ToolCallDelta)]


def _block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


ANTHROPIC_THINKING = _sse(
    [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "usage": {"input_tokens": 40, "output_tokens": 2},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        _block_delta(0, {"type": "thinking_delta", "thinking": "The user wants the wea"}),
        _block_delta(0, {"type": "thinking_delta", "thinking": "ther; I should call the tool."}),
        _block_delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9G"}),
        _block_delta(0, {"type": "signature_delta", "signature": "JwZA2b3hGgxBdjrkzLoky3"}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/Laf"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        _block_delta(2, {"type": "text_delta", "text": "Checking."}),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 3,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "weather",
                    "input": {},
                },
            },
        ),
        _block_delta(3, {"type": "input_json_delta", "partial_json": '{"city": '}),
        _block_delta(3, {"type": "input_json_delta", "partial_json": '"Oslo"}'}),
        ("content_block_stop", {"type": "content_block_stop", "index": 3}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 90},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
)


def test_anthropic_thinking_is_reasoning_and_its_blocks_are_kept() -> None:
    reader = AnthropicEvents()
    text, thought, calls = _split(_feed(reader, ANTHROPIC_THINKING))
    assert thought == "The user wants the weather; I should call the tool."
    assert text == "Checking."  # no thinking, no signature, no redacted data in the text
    assert [c.arguments for c in calls] == ["", '{"city": ', '"Oslo"}']
    assert reader.thinking_blocks == [
        {
            "type": "thinking",
            "thinking": thought,
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3",
        },
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/Laf"},
    ]
    assert reader.finish_reason == "tool_calls"
    usage = reader.usage
    assert usage is not None and usage.output_tokens == 90
    # no count of its own: the output less the answer (25 characters: 7 tokens)
    assert usage.reasoning_tokens == 90 - 7


def test_anthropic_without_thinking_counts_no_reasoning() -> None:
    body = _sse(
        [
            ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 3}}}),
            _block_delta(0, {"type": "text_delta", "text": "hi"}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 1},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    )
    reader = AnthropicEvents()
    assert _feed(reader, body) == ["hi"]
    assert reader.thinking_blocks == [] and reader.usage is not None
    assert reader.usage.reasoning_tokens == 0


def test_anthropic_sends_the_thinking_blocks_back_first() -> None:
    blocks = [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
    ]
    call = {"id": "toolu_01", "name": "weather", "arguments": {"city": "Oslo"}}
    messages = [
        {"role": "user", "content": "weather?"},
        assistant_message("Checking.", [call], blocks),
        tool_message(call, "sunny"),
    ]
    turns = anthropic_messages(messages, thinking=True)
    assert [b["type"] for b in turns[1]["content"]] == [
        "thinking",
        "redacted_thinking",
        "text",
        "tool_use",
    ]
    assert turns[1]["content"][:2] == blocks  # verbatim, signature and data unchanged
    # thinking off: the blocks stay home
    plain = anthropic_messages(messages)
    assert [b["type"] for b in plain[1]["content"]] == ["text", "tool_use"]


def test_google_thought_parts_are_reasoning_and_thoughts_count_as_output() -> None:
    def event(parts: list[dict[str, Any]], **extra: Any) -> tuple[None, dict[str, Any]]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        candidate.update(extra.pop("candidate", {}))
        return None, {"candidates": [candidate], **extra}

    body = _sse(
        [
            event([{"text": "**Planning**\nThe user asks", "thought": True}]),
            event(
                [{"text": " for a haiku.", "thought": True}, {"text": "Autumn"}],
                usageMetadata={"promptTokenCount": 9, "thoughtsTokenCount": 30},
            ),
            event(
                [{"text": " moonlight"}],
                candidate={"finishReason": "STOP"},
                usageMetadata={
                    "promptTokenCount": 9,
                    "candidatesTokenCount": 4,
                    "thoughtsTokenCount": 30,
                    "totalTokenCount": 43,
                },
            ),
        ]
    )
    reader = GoogleEvents()
    text, thought, _ = _split(_feed(reader, body))
    assert thought == "**Planning**\nThe user asks for a haiku."
    assert text == "Autumn moonlight"
    usage = reader.usage
    assert usage is not None
    # Gemini counts thoughts apart from candidates and bills both as output
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (9, 34, 30)
    assert usage.total_tokens == 43


def test_openai_reasoning_tokens_and_compatible_reasoning_content() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, dict[str, Any]]:
        return None, {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    body = (
        _sse(
            [
                chunk({"role": "assistant", "content": ""}),
                chunk({"content": None, "reasoning_content": "Two plus two"}),
                chunk({"reasoning_content": " is four."}),
                chunk({"content": "4"}),
                chunk({}, "stop"),
                (
                    None,
                    {
                        "choices": [],
                        "usage": {
                            "prompt_tokens": 5,
                            "completion_tokens": 70,
                            "total_tokens": 75,
                            "completion_tokens_details": {"reasoning_tokens": 64},
                        },
                    },
                ),
            ]
        )
        + b"data: [DONE]\n\n"
    )
    reader = OpenAIEvents()
    text, thought, _ = _split(_feed(reader, body))
    assert (text, thought) == ("4", "Two plus two is four.")
    assert reader.usage is not None
    assert (reader.usage.output_tokens, reader.usage.reasoning_tokens) == (70, 64)


def _request(model: str, **settings: Any) -> ProviderRequest:
    return ProviderRequest(model, [{"role": "user", "content": "hi"}], settings)


def test_the_setting_on_each_wire() -> None:
    params = build_params(_request("claude-sonnet-4-5", reasoning={"effort": "low"}))
    assert params["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert params["max_tokens"] == 1024 + 4096  # room to answer besides the budget
    params = build_params(
        _request("claude-sonnet-4-5", max_tokens=9000, reasoning={"budget_tokens": 2000})
    )
    assert params["thinking"]["budget_tokens"] == 2000 and params["max_tokens"] == 9000
    assert "thinking" not in build_params(_request("claude-sonnet-4-5"))
    config = build_body(_request("gemini-2.5-flash", reasoning={"budget_tokens": 512}))
    assert config["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": True,
        "thinkingBudget": 512,
    }
    config = build_body(_request("gemini-2.5-flash", reasoning={}))
    assert config["generationConfig"]["thinkingConfig"] == {"includeThoughts": True}
    body: dict[str, Any] = {"max_tokens": 100}
    reasoning_params({"reasoning": {"effort": "high"}}, body)
    assert body == {"reasoning_effort": "high", "max_completion_tokens": 100}
    body = {"max_tokens": 100}
    reasoning_params({}, body)
    assert body == {"max_tokens": 100}


REFUSED = [
    (
        "openai",
        "o4-mini",
        {"reasoning": {"budget_tokens": 2000}},
        "settings.reasoning.budget_tokens",
    ),
    ("openai", "gpt-4o-mini", {"reasoning": {"effort": "low"}}, "settings.reasoning"),
    ("anthropic", "claude-3-5-haiku-latest", {"reasoning": {}}, "settings.reasoning"),
    (
        "anthropic",
        "claude-sonnet-4-5",
        {"reasoning": {"budget_tokens": 1000}},
        "settings.reasoning.budget_tokens",
    ),
    (
        "anthropic",
        "claude-sonnet-4-5",
        {"reasoning": {"budget_tokens": 2048}, "max_tokens": 2048},
        "settings.reasoning.budget_tokens",
    ),
    (
        "anthropic",
        "claude-sonnet-4-5",
        {"reasoning": {}, "tool_choice": "required"},
        "settings.reasoning",
    ),
    ("google", "gemini-2.0-flash", {"reasoning": {}}, "settings.reasoning"),
    (
        "google",
        "gemini-2.5-pro",
        {"reasoning": {"budget_tokens": 40000}},
        "settings.reasoning.budget_tokens",
    ),
]


def _adapter(name: str) -> Provider:
    if name == "openai":
        return OpenAIProvider(None, None, 1)
    if name == "anthropic":
        return AnthropicProvider(None, None, 1)
    return GoogleProvider(None, None, 1)


@pytest.mark.parametrize(("name", "model", "settings", "field"), REFUSED)
async def test_a_setting_the_model_cannot_take_is_refused(
    name: str, model: str, settings: dict[str, Any], field: str
) -> None:
    provider = _adapter(name)
    try:
        with pytest.raises(InvalidRequest) as raised:
            provider.check_settings(settings, model)
        assert raised.value.message.startswith(f"{name} does not support the setting ")
        assert raised.value.details == {"errors": [{"field": field, "message": "unsupported"}]}
    finally:
        await provider.close()


async def test_settings_the_models_take_pass() -> None:
    accepted = [
        ("openai", "o4-mini", {"reasoning": {"effort": "low"}}),
        (
            "anthropic",
            "claude-opus-4-1",
            {"reasoning": {"budget_tokens": 2048}, "max_tokens": 4096},
        ),
        ("google", "gemini-2.5-flash", {"reasoning": {"effort": "high", "budget_tokens": 100}}),
    ]
    for name, model, settings in accepted:
        provider = _adapter(name)
        provider.check_settings(settings, model)
        await provider.close()
    SimulatedProvider().check_settings({"reasoning": {"budget_tokens": 1}}, "demo")
