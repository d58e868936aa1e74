"""The SSE decoding the provider adapters read their streams with: bytes in, deltas out, no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.errors import ProviderRejected, ProviderUnavailable
from engine.providers.anthropic_events import AnthropicEvents
from engine.providers.google_events import GoogleEvents
from engine.providers.reasoning import ReasoningDelta
from engine.providers.sse import OpenAIEvents, SSEDecoder
from engine.usage import Usage


def feed_all(pieces: list[bytes]) -> list[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    events = [e for piece in pieces for e in decoder.feed(piece)]
    return events + decoder.close()


def split_every(data: bytes, n: int) -> list[bytes]:
    return [data[i : i + n] for i in range(0, len(data), n)]


WIRE = (
    b": a comment\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"data: first\ndata: second\n\n"
    b"id: 7\nretry: 100\ndata:no-space\n\n"
    b"event: ping\ndata: {}\n\n"
)
EXPECTED = [
    ("message_start", b'{"a": 1}'),
    (None, b"first\nsecond"),
    (None, b"no-space"),
    ("ping", b"{}"),
]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_events_survive_any_split_and_line_ending(ending: bytes, size: int) -> None:
    wire = WIRE.replace(b"\n", ending)
    assert feed_all(split_every(wire, size)) == EXPECTED


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r") == []  # CRLF ends the line; the lone CR may be half of CRLF
    assert decoder.feed(b"\n") == [(None, b"x")]


def test_an_unterminated_last_event_still_counts_at_the_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"b": 2}') == []
    assert decoder.close() == [(None, b'{"b": 2}')]
    assert decoder.close() == []


def test_event_name_applies_to_one_event_only() -> None:
    assert feed_all([b"event: error\n\ndata: x\n\n"]) == [(None, b"x")]


def data(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def openai_chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    return data({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_openai_text_finish_usage_and_done() -> None:
    reader = OpenAIEvents()
    assert reader.on_event(None, data({"choices": [{"delta": {"role": "assistant"}}]})) is None
    assert reader.on_event(None, openai_chunk("tok0 ")) == "tok0 "
    assert reader.on_event(None, openai_chunk("")) is None
    assert reader.on_event(None, openai_chunk(finish="length")) is None
    usage = {
        "prompt_tokens": 6,
        "completion_tokens": 8,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    assert reader.on_event(None, data({"choices": [], "usage": usage})) is None
    assert (reader.finish_reason, reader.usage, reader.done) == ("length", Usage(6, 8, 2), False)
    assert reader.on_event(None, b"[DONE]") is None and reader.done


def test_openai_stream_without_usage_keeps_none() -> None:
    reader = OpenAIEvents()
    reader.on_event(None, data({"choices": [{"delta": {"content": "x"}}], "usage": None}))
    assert reader.usage is None and reader.finish_reason is None


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", data({"error": {"message": "boom"}})])
def test_openai_bad_or_error_event_is_a_cut_stream(payload: bytes) -> None:
    with pytest.raises(ProviderUnavailable, match="openai stream broke off"):
        OpenAIEvents().on_event(None, payload)


def anthropic_events(reader: AnthropicEvents, events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(reader.on_event(name, data(body)) or "" for name, body in events)


def test_anthropic_text_usage_with_cache_and_stop_reason() -> None:
    reader = AnthropicEvents()
    start = {"message": {"usage": {"input_tokens": 4, "cache_read_input_tokens": 3}}}
    text = anthropic_events(
        reader,
        [
            ("message_start", {"type": "message_start", **start}),
            ("ping", {"type": "ping"}),
            (
                "content_block_delta",
                {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "tok0 "}},
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "delta": {"type": "input_json_delta", "partial_json": "{}"},
                },
            ),
        ],
    )
    assert text == "tok0 " and reader.usage is None and reader.finish_reason is None
    anthropic_events(
        reader,
        [
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "max_tokens"},
                    "usage": {"output_tokens": 9},
                },
            ),
        ],
    )
    assert reader.usage == Usage(7, 9, 3) and reader.finish_reason is None
    anthropic_events(reader, [("message_stop", {"type": "message_stop"})])
    assert reader.finish_reason == "length" and not reader.done  # the body is read to its end


def test_anthropic_events_without_a_name_are_skipped_like_the_sdk_does() -> None:
    reader = AnthropicEvents()
    body = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}}
    assert reader.on_event(None, data(body)) is None


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("overloaded_error", ProviderUnavailable, "anthropic reported overloaded_error"),
        ("invalid_request_error", ProviderRejected, "anthropic reported invalid_request_error"),
        (None, ProviderRejected, "anthropic reported an error"),
    ],
)
def test_anthropic_in_stream_error_maps_by_type(
    kind: str | None, error: type[Exception], message: str
) -> None:
    reader = AnthropicEvents({"retry-after": "3"})
    body = {"type": "error", "error": {"message": "secret text"} | ({"type": kind} if kind else {})}
    with pytest.raises(error, match=message) as caught:
        reader.on_event("error", data(body))
    assert "secret" not in str(caught.value)
    if error is ProviderUnavailable:
        assert caught.value.retry_after_s == 3.0  # type: ignore[attr-defined]


def google_response(parts: list[dict[str, Any]], **extra: Any) -> bytes:
    return data({"candidates": [{"content": {"parts": parts, "role": "model"}, **extra}]})


def test_google_thoughts_apart_from_text_usage_and_finish() -> None:
    reader = GoogleEvents()
    # A thought part is reasoning, on its own channel: never text.
    thought = reader.on_event(None, google_response([{"text": "hm", "thought": True}]))
    assert thought == [ReasoningDelta("hm")]
    assert reader.on_event(None, google_response([{"text": "a"}, {"text": "b"}])) == "ab"
    last = json.loads(google_response([{"text": "c"}], finishReason="MAX_TOKENS"))
    last["usageMetadata"] = {
        "promptTokenCount": 5,
        "candidatesTokenCount": 3,
        "thoughtsTokenCount": 2,
        "cachedContentTokenCount": 1,
    }
    assert reader.on_event(None, data(last)) == "c"
    assert reader.finish_reason == "length" and reader.usage == Usage(5, 5, 1, 2)


def test_google_function_call_finishes_as_tool_calls() -> None:
    reader = GoogleEvents()
    reader.on_event(None, google_response([{"functionCall": {"name": "f"}}]))
    reader.on_event(None, google_response([], finishReason="STOP"))
    assert reader.finish_reason == "tool_calls"


@pytest.mark.parametrize(("code", "error"), [(429, ProviderUnavailable), (400, ProviderRejected)])
def test_google_in_stream_error_maps_by_code(code: int, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"HTTP {code}"):
        GoogleEvents().on_event(None, data({"error": {"code": code, "message": "no"}}))
