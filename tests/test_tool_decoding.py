"""Streamed tool calls decoded from each provider's wire events, and tools mapped onto each
wire format: pure, no sockets (recorded event sequences written for these tests)."""

from __future__ import annotations

import json
from typing import Any

from engine.providers.anthropic_events import AnthropicEvents
from engine.providers.google_events import GoogleEvents
from engine.providers.sse import OpenAIEvents, SSEDecoder
from engine.providers.toolcalls import ToolCallAssembler, ToolCallDelta, assistant_message
from engine.providers.toolwire import (
    anthropic_messages,
    anthropic_tools,
    gemini_contents,
    gemini_tools,
    openai_message,
    openai_tools,
)


def _feed(reader: Any, body: bytes, size: int = 7) -> list[Any]:
    """Decode `body` fed in `size`-byte pieces (events split across reads)."""
    decoder, out = SSEDecoder(), []
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    events = [e for piece in pieces for e in decoder.feed(piece)] + decoder.close()
    for event, data in events:
        got = reader.on_event(event, data)
        out.extend([got] if isinstance(got, str) else got or [])
    return out


def _assemble(deltas: list[Any]) -> tuple[str, list[dict[str, Any]], list[ToolCallDelta]]:
    calls, text, pieces = ToolCallAssembler(), [], []
    for d in deltas:
        if isinstance(d, str):
            text.append(d)
        else:
            pieces.append(calls.add(d))
    return "".join(text), calls.calls(), pieces


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = b""
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        body = data if isinstance(data, str) else json.dumps(data)
        out += f"{head}data: {body}\n\n".encode()
    return out


def _oa(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


OPENAI_TWO_CALLS = _sse(
    [
        (None, _oa({"role": "assistant", "content": None})),
        (
            None,
            _oa(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "weather", "arguments": ""},
                        }
                    ]
                }
            ),
        ),
        (None, _oa({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]})),
        (None, _oa({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Par'}}]})),
        (None, _oa({"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]})),
        (
            None,
            _oa(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "time", "arguments": '{"tz"'},
                        }
                    ]
                }
            ),
        ),
        (None, _oa({"tool_calls": [{"index": 1, "function": {"arguments": ': "UTC"}'}}]})),
        (None, _oa({}, "tool_calls")),
        (None, {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 9}}),
        (None, "[DONE]"),
    ]
)


def test_openai_two_calls_split_across_events() -> None:
    reader = OpenAIEvents()
    text, calls, pieces = _assemble(_feed(reader, OPENAI_TWO_CALLS))
    assert text == ""
    assert calls == [
        {"id": "call_a", "name": "weather", "arguments": {"city": "Paris"}},
        {"id": "call_b", "name": "time", "arguments": {"tz": "UTC"}},
    ]
    assert reader.finish_reason == "tool_calls"
    assert reader.usage is not None and reader.usage.output_tokens == 9
    # every piece names its call, also the fragments that came without id and name
    assert {(p.call_id, p.name) for p in pieces} == {("call_a", "weather"), ("call_b", "time")}
    assert "".join(p.arguments for p in pieces if p.index == 0) == '{"city": "Paris"}'


def test_openai_arguments_that_are_not_json_are_kept_and_flagged() -> None:
    body = _sse(
        [
            (
                None,
                _oa(
                    {
                        "tool_calls": [
                            {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{"}}
                        ]
                    }
                ),
            ),
            (None, _oa({"tool_calls": [{"index": 0, "function": {"arguments": '"a": '}}]})),
            (None, _oa({}, "tool_calls")),
            (None, "[DONE]"),
        ]
    )
    _, calls, _ = _assemble(_feed(OpenAIEvents(), body))
    assert calls == [
        {
            "id": "c1",
            "name": "f",
            "arguments": None,
            "arguments_text": '{"a": ',
            "arguments_error": "the arguments are not valid JSON",
        }
    ]


def _block_delta(index: int, partial: str) -> tuple[str, dict[str, Any]]:
    delta = {"type": "input_json_delta", "partial_json": partial}
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


ANTHROPIC_TWO_CALLS = _sse(
    [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 30, "output_tokens": 1}},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Let me check."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {},
                },
            },
        ),
        ("ping", {"type": "ping"}),
        _block_delta(1, ""),
        _block_delta(1, '{"city": '),
        _block_delta(1, '"Oslo"}'),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
            },
        ),
        _block_delta(2, '{"tz": "CET"}'),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 40},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
)


def test_anthropic_text_then_two_tool_use_blocks() -> None:
    reader = AnthropicEvents()
    text, calls, _ = _assemble(_feed(reader, ANTHROPIC_TWO_CALLS, size=11))
    assert text == "Let me check."
    assert calls == [
        {"id": "toolu_1", "name": "weather", "arguments": {"city": "Oslo"}},
        {"id": "toolu_2", "name": "time", "arguments": {"tz": "CET"}},
    ]
    assert reader.finish_reason == "tool_calls"
    assert reader.usage is not None and reader.usage.output_tokens == 40


def _gemini(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 7},
    }


def test_gemini_function_calls_in_several_events() -> None:
    body = _sse(
        [
            (None, _gemini([{"text": "Checking"}])),
            (
                None,
                _gemini(
                    [{"functionCall": {"id": "fc1", "name": "weather", "args": {"city": "Rome"}}}]
                ),
            ),
            (
                None,
                _gemini(
                    [
                        {"functionCall": {"name": "time", "args": {"tz": "CET"}}},
                        {"functionCall": {"name": "time", "args": {}}},
                    ],
                    "STOP",
                ),
            ),
        ]
    )
    reader = GoogleEvents()
    text, calls, _ = _assemble(_feed(reader, body))
    assert text == "Checking"
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("weather", {"city": "Rome"}),
        ("time", {"tz": "CET"}),
        ("time", {}),
    ]
    assert calls[0]["id"] == "fc1" and calls[1]["id"].startswith("call_")
    assert len({c["id"] for c in calls}) == 3
    assert reader.finish_reason == "tool_calls"  # STOP with calls


TOOLS = [{"name": "weather", "description": "Weather", "parameters": {"type": "object"}}]
CALL = {"id": "c1", "name": "weather", "arguments": {"city": "Oslo"}}
CONVERSATION = [
    {"role": "user", "content": "weather?"},
    assistant_message("", [CALL, {**CALL, "id": "c2"}]),
    {"role": "tool", "tool_call_id": "c1", "name": "weather", "content": "sunny"},
    {"role": "tool", "tool_call_id": "c2", "name": "weather", "content": "rain"},
]


def test_openai_wire() -> None:
    body: dict[str, Any] = {}
    openai_tools({"tools": TOOLS, "tool_choice": {"name": "weather"}}, body)
    assert body["tools"][0] == {"type": "function", "function": TOOLS[0]}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    sent = [openai_message(m) for m in CONVERSATION]
    assert sent[1]["tool_calls"][0] == {
        "id": "c1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
    }
    assert sent[1]["content"] is None
    assert sent[2] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}


def test_anthropic_wire() -> None:
    params: dict[str, Any] = {}
    anthropic_tools({"tools": TOOLS, "tool_choice": "required"}, params)
    assert params["tools"][0]["input_schema"] == {"type": "object"}
    assert params["tool_choice"] == {"type": "any"}
    turns = anthropic_messages(CONVERSATION)
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][0] == {
        "type": "tool_use",
        "id": "c1",
        "name": "weather",
        "input": {"city": "Oslo"},
    }
    assert [b["tool_use_id"] for b in turns[2]["content"]] == ["c1", "c2"]


def test_gemini_wire() -> None:
    body: dict[str, Any] = {}
    gemini_tools({"tools": TOOLS, "tool_choice": "none"}, body)
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "weather"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    contents = gemini_contents(CONVERSATION)
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0] == {
        "functionCall": {"name": "weather", "args": {"city": "Oslo"}}
    }
    assert [p["functionResponse"]["response"] for p in contents[2]["parts"]] == [
        {"output": "sunny"},
        {"output": "rain"},
    ]
