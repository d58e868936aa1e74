"""Server-sent events off the wire, decoded straight into the few fields the adapters use.

Pure: bytes in, text deltas, finish reasons and usage out; no I/O. The adapters let the
official SDKs make the request (auth, base URL, headers, status errors) and feed the raw
response body here, instead of having the SDK build typed objects for every event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from engine.errors import ProviderFault, ProviderRejected, ProviderUnavailable
from engine.providers import faults
from engine.providers.base import Usage
from engine.providers.toolcalls import Delta, ToolCallDelta

Out = str | list[Delta] | None  # what one event yields: text, text and tool-call pieces, nothing

Event = tuple[str | None, bytes]  # (the `event:` name or None, the joined `data:` lines)


class SSEDecoder:
    """Splits a byte stream into events as the SSE spec does: lines end in LF, CRLF or CR,
    a blank line ends an event, `data:` lines of one event join with LF, `:` is a comment."""

    __slots__ = ("_tail", "_event", "_data")

    def __init__(self) -> None:
        self._tail = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Event]:
        """The events `chunk` completes (a partial line waits for the next chunk)."""
        buf = self._tail + chunk if self._tail else chunk
        if b"\r" in buf:
            # A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
            held = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n")
            if held:
                buf = buf[:-1]
            buf = buf.replace(b"\r", b"\n")
            lines = buf.split(b"\n")
            self._tail = lines.pop() + (b"\r" if held else b"")
        else:
            lines = buf.split(b"\n")
            self._tail = lines.pop()
        events: list[Event] = []
        for line in lines:
            self._line(line, events)
        return events

    def close(self) -> list[Event]:
        """At the end of the body: a last line and event without their blank line still count."""
        events: list[Event] = []
        tail, self._tail = self._tail.rstrip(b"\r"), b""
        if tail:
            self._line(tail, events)
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[Event]) -> None:
        if not line:
            if self._data:
                events.append((self._event, b"\n".join(self._data)))
                self._data = []
            self._event = None
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # `id`, `retry`, comments (an empty name) and unknown fields mean nothing to us.


def _object(provider: str, data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise faults.cut(provider) from None
    if not isinstance(value, dict):
        raise faults.cut(provider)
    return value


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class OpenAIEvents:
    """Chat Completions chunks: `choices[0].delta.content`, `finish_reason`, `usage`; `[DONE]`."""

    __slots__ = ("finish_reason", "usage", "done")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False

    def on_event(self, event: str | None, data: bytes) -> Out:
        """The text delta of one event, if any; raises our error for an in-stream error."""
        if data.startswith(b"[DONE]"):
            self.done = True
            return None
        chunk = _object("openai", data)
        if chunk.get("error"):
            # The SDK raises a plain APIError for this, which was always "the stream broke off".
            raise faults.cut("openai")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            self.usage = Usage(
                _count(usage.get("prompt_tokens")),
                _count(usage.get("completion_tokens")),
                _count(cached),
            )
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            self.finish_reason = finish
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return None
        content = delta.get("content")
        text = content if isinstance(content, str) and content else None
        calls = delta.get("tool_calls")
        if not calls or not isinstance(calls, list):
            return text
        out: list[Delta] = [text] if text else []
        out.extend(openai_tool_deltas(calls))
        return out


def openai_tool_deltas(calls: list[Any]) -> list[Delta]:
    """`delta.tool_calls[i]`: `index`, then `id` and `function.name` on a call's first
    piece and `function.arguments` fragments on it and the next ones."""
    out: list[Delta] = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("index"), int):
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        name, arguments, call_id = function.get("name"), function.get("arguments"), call.get("id")
        out.append(
            ToolCallDelta(
                call["index"],
                call_id if isinstance(call_id, str) and call_id else None,
                name if isinstance(name, str) and name else None,
                arguments if isinstance(arguments, str) else "",
            )
        )
    return out


# Anthropic's own stop reasons, in ours.
ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Error types that may pass, also when they arrive inside a 200 stream as an `error` event.
ANTHROPIC_TRANSIENT = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
_ANTHROPIC_COUNTS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)


def anthropic_error(
    kind: str | None, status: int, headers: Mapping[str, str] | None
) -> ProviderFault:
    """Our error for an Anthropic error of type `kind` (a status error or an in-stream one)."""
    if kind in ANTHROPIC_TRANSIENT:
        return ProviderUnavailable(
            f"anthropic reported {kind}", retry_after_s=faults.retry_after(headers)
        )
    if status == 200:  # an in-stream error of a kind that will not pass
        return ProviderRejected(f"anthropic reported {kind or 'an error'}")
    return faults.from_status("anthropic", status, headers)


class AnthropicEvents:
    """Messages API events: text deltas, cumulative usage, the stop reason, `error` events."""

    __slots__ = (
        "finish_reason",
        "usage",
        "done",
        "_stop_reason",
        "_counts",
        "_headers",
        "_tool_blocks",
    )

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self._tool_blocks: set[int] = set()  # content blocks that are tool_use
        self._stop_reason: str | None = None
        self._counts: dict[str, int] = {}
        self._headers = headers  # of the response, for an in-stream error's retry-after

    def on_event(self, event: str | None, data: bytes) -> Out:
        """The text delta of one event, if any; raises our error for an `error` event."""
        if event is None or event == "ping" or not data:
            return None  # the SDK skips these too
        message = _object("anthropic", data)
        if event == "error":
            error = message.get("error")
            kind = error.get("type") if isinstance(error, dict) else None
            raise anthropic_error(kind if isinstance(kind, str) else None, 200, self._headers)
        kind = message.get("type")
        if kind == "content_block_delta":
            delta = message.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                return text if isinstance(text, str) and text else None
            if isinstance(delta, dict) and delta.get("type") == "input_json_delta":
                return self._tool_piece(message.get("index"), delta.get("partial_json"))
        elif kind == "content_block_start":
            return self._tool_start(message.get("index"), message.get("content_block"))
        elif kind == "message_start":
            start = message.get("message")
            self._count(start.get("usage") if isinstance(start, dict) else None)
        elif kind == "message_delta":
            delta = message.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            self._stop_reason = stop if isinstance(stop, str) else self._stop_reason
            self._count(message.get("usage"))
            # Only message_delta carries the real output count (message_start's is a
            # placeholder); before it, a cut or cancelled stream is estimated.
            self.usage = self._usage()
        elif kind == "message_stop":
            # The terminal event: only now did the provider end the stream itself.
            self.finish_reason = ANTHROPIC_FINISH.get(self._stop_reason or "end_turn", "stop")
            self.done = True
        return None

    def _tool_start(self, index: Any, block: Any) -> Out:
        """`content_block_start` of a `tool_use` block: the call's id and name."""
        if not isinstance(index, int) or not isinstance(block, dict):
            return None
        if block.get("type") != "tool_use":
            return None
        self._tool_blocks.add(index)
        call_id, name = block.get("id"), block.get("name")
        return [
            ToolCallDelta(
                index,
                call_id if isinstance(call_id, str) and call_id else None,
                name if isinstance(name, str) and name else None,
                "",
            )
        ]

    def _tool_piece(self, index: Any, partial: Any) -> Out:
        """`input_json_delta.partial_json`: a fragment of a tool_use block's input."""
        if index not in self._tool_blocks or not isinstance(partial, str) or not partial:
            return None
        assert isinstance(index, int)
        return [ToolCallDelta(index, None, None, partial)]

    def _count(self, usage: Any) -> None:
        """message_start and message_delta carry cumulative counts; keep the latest of each."""
        if isinstance(usage, dict):
            for name in _ANTHROPIC_COUNTS:
                value = usage.get(name)
                if isinstance(value, int):
                    self._counts[name] = value

    def _usage(self) -> Usage:
        counts = self._counts
        cached = counts.get("cache_read_input_tokens", 0)
        # Anthropic's input_tokens exclude cache reads and writes; ours count every input token.
        total_input = (
            counts.get("input_tokens", 0) + cached + counts.get("cache_creation_input_tokens", 0)
        )
        return Usage(total_input, counts.get("output_tokens", 0), cached)


# Gemini's finish reasons, in ours (anything else is a plain stop).
GOOGLE_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "UNEXPECTED_TOOL_CALL": "tool_calls",
    "MALFORMED_FUNCTION_CALL": "tool_calls",
}


class GoogleEvents:
    """`streamGenerateContent?alt=sse` responses: the first candidate's text parts (thoughts
    left out), its finish reason, `usageMetadata`, and an `error` object in the stream."""

    __slots__ = ("finish_reason", "usage", "done", "_calls", "_headers")

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self._calls = 0  # functionCall parts seen: the next one's index
        self._headers = headers

    def on_event(self, event: str | None, data: bytes) -> Out:
        """The text of one response, if any; raises our error for an in-stream error."""
        response = _object("google", data)
        error = response.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            status = code if isinstance(code, int) and code else 500
            raise faults.from_status("google", status, self._headers)
        meta = response.get("usageMetadata")
        if isinstance(meta, dict):
            output = _count(meta.get("candidatesTokenCount")) + _count(
                meta.get("thoughtsTokenCount")
            )
            self.usage = Usage(
                _count(meta.get("promptTokenCount")),
                output,
                _count(meta.get("cachedContentTokenCount")),
            )
        candidates = response.get("candidates")
        if not candidates or not isinstance(candidates, list):
            return None
        return self._candidate(candidates[0])

    def _candidate(self, candidate: Any) -> Out:
        if not isinstance(candidate, dict):
            return None
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        out: list[Delta] = []
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str) and text and not part.get("thought"):
                if out and isinstance(out[-1], str):
                    out[-1] += text
                else:
                    out.append(text)
            call = part.get("functionCall")
            if isinstance(call, dict):
                out.append(self._function_call(call))
        reason = candidate.get("finishReason")
        if isinstance(reason, str):
            mapped = GOOGLE_FINISH.get(reason, "stop")
            self.finish_reason = "tool_calls" if self._calls else mapped
        if len(out) == 1 and isinstance(out[0], str):
            return out[0]
        return out or None

    def _function_call(self, call: dict[str, Any]) -> ToolCallDelta:
        """A `functionCall` part: the whole call at once (`args` an object, `id` if given)."""
        index, self._calls = self._calls, self._calls + 1
        name, args, call_id = call.get("name"), call.get("args"), call.get("id")
        return ToolCallDelta(
            index,
            call_id if isinstance(call_id, str) and call_id else None,
            name if isinstance(name, str) and name else None,
            orjson.dumps(args).decode() if isinstance(args, dict) else "{}",
        )
