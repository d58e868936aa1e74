"""Provider stream bodies shaped like the providers' own recorded streams (ids, created,
system fingerprints, pings and all), written for these tests: refusals, blocked prompts,
several choices, several messages in one body, usage only at a message's start, and
streams cut on an event boundary before their terminal event."""

from __future__ import annotations

import json
from typing import Any


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    """An SSE body: `event:` (when named) and one `data:` line per event."""
    out = b""
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        out += f"{head}data: {body}\n\n".encode()
    return out


def _oa(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion.chunk",
        "created": 1767607200,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_b705f0c291",
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def _choice(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


_OA_USAGE = {
    "prompt_tokens": 6,
    "completion_tokens": 9,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 0},
}

OPENAI_REFUSAL = sse(
    [
        (None, _oa([_choice({"role": "assistant", "content": None, "refusal": ""})])),
        (None, _oa([_choice({"refusal": "I'm sorry, "})])),
        (None, _oa([_choice({"refusal": "I can't help with that."})])),
        (None, _oa([_choice({}, "stop")])),
        (None, _oa([], _OA_USAGE)),
        (None, "[DONE]"),
    ]
)

# `n` = 2: the chunks of both choices interleave, one choice per chunk.
OPENAI_TWO_CHOICES = sse(
    [
        (None, _oa([_choice({"role": "assistant", "content": ""}, index=0)])),
        (None, _oa([_choice({"role": "assistant", "content": ""}, index=1)])),
        (None, _oa([_choice({"content": "Hello"}, index=0)])),
        (None, _oa([_choice({"content": "Bonjour"}, index=1)])),
        (None, _oa([_choice({"content": " there"}, index=0)])),
        (None, _oa([_choice({}, "length", index=1)])),
        (None, _oa([_choice({}, "stop", index=0)])),
        (None, _oa([], _OA_USAGE)),
        (None, "[DONE]"),
    ]
)

# Cut after the text, on an event boundary: no finish chunk, no usage, no [DONE].
OPENAI_NO_END = sse(
    [
        (None, _oa([_choice({"role": "assistant", "content": "", "refusal": None})])),
        (None, _oa([_choice({"content": "Half an"})])),
        (None, _oa([_choice({"content": " answer"})])),
    ]
)


def _message_start(msg_id: str, input_tokens: int, output_tokens: int = 1) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
            },
        },
    }


def _text_block(index: int, *texts: str) -> list[tuple[str | None, Any]]:
    start = {
        "type": "content_block_start",
        "index": index,
        "content_block": {"type": "text", "text": ""},
    }
    events: list[tuple[str | None, Any]] = [
        ("content_block_start", start),
        ("ping", {"type": "ping"}),
    ]
    for text in texts:
        delta = {"type": "text_delta", "text": text}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _message_end(stop: str, output_tokens: int | None) -> list[tuple[str | None, Any]]:
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
    }
    if output_tokens is not None:
        delta["usage"] = {"output_tokens": output_tokens}
    return [("message_delta", delta), ("message_stop", {"type": "message_stop"})]


# Two messages in one body (a server-side tool ran between them).
ANTHROPIC_TWO_MESSAGES = sse(
    [
        ("message_start", _message_start("msg_01A", 10)),
        *_text_block(0, "Let me ", "look."),
        *_message_end("pause_turn", 4),
        ("message_start", _message_start("msg_01B", 30)),
        *_text_block(0, " Found ", "it."),
        *_message_end("max_tokens", 5),
    ]
)

# Usage in message_start only (its message_delta carries none).
ANTHROPIC_START_USAGE_ONLY = sse(
    [
        ("message_start", _message_start("msg_01C", 12, 7)),
        *_text_block(0, "Short."),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
)

ANTHROPIC_REFUSAL = sse(
    [
        ("message_start", _message_start("msg_01D", 9)),
        *_text_block(0, "I can"),
        *_message_end("refusal", 3),
    ]
)

# Cut on an event boundary after message_delta: no message_stop.
ANTHROPIC_NO_END = sse(
    [
        ("message_start", _message_start("msg_01E", 9)),
        *_text_block(0, "Half an", " answer"),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 3},
            },
        ),
    ]
)


def _gemini(
    parts: list[dict[str, Any]] | None, finish: str | None = None, index: int = 0, **extra: Any
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"index": index}
    if parts is not None:
        candidate["content"] = {"parts": parts, "role": "model"}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "modelVersion": "gemini-2.0-flash",
        "responseId": "r-1",
        **extra,
    }


_GEMINI_USAGE = {"promptTokenCount": 6, "candidatesTokenCount": 4, "totalTokenCount": 10}

GEMINI_BLOCKED_PROMPT = sse(
    [
        (
            None,
            {
                "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": {"promptTokenCount": 6, "totalTokenCount": 6},
                "modelVersion": "gemini-2.0-flash",
                "responseId": "r-2",
            },
        ),
    ]
)

GEMINI_SAFETY = sse(
    [
        (None, _gemini([{"text": "Here is"}])),
        (None, _gemini(None, "SAFETY", usageMetadata=_GEMINI_USAGE, safetyRatings=[])),
    ]
)

GEMINI_TWO_CANDIDATES = sse(
    [
        (
            None,
            {
                "candidates": [
                    {"index": 0, "content": {"parts": [{"text": "Hello"}], "role": "model"}},
                    {"index": 1, "content": {"parts": [{"text": "Bonjour"}], "role": "model"}},
                ]
            },
        ),
        (
            None,
            {
                "candidates": [
                    {
                        "index": 1,
                        "content": {"parts": [{"text": " toi"}], "role": "model"},
                        "finishReason": "MAX_TOKENS",
                    }
                ]
            },
        ),
        (None, _gemini([{"text": " there"}], "STOP", usageMetadata=_GEMINI_USAGE)),
    ]
)

# Cut on an event boundary: no candidate with a finishReason.
GEMINI_NO_END = sse(
    [
        (None, _gemini([{"text": "Half an"}])),
        (None, _gemini([{"text": " answer"}], usageMetadata=_GEMINI_USAGE)),
    ]
)
