"""Server-sent events off the wire, decoded straight into the few fields the adapters use.

Pure: bytes in, text deltas, finish reasons and usage out; no I/O. The adapters let the
official SDKs make the request (auth, base URL, headers, status errors) and feed the raw
response body here, instead of having the SDK build typed objects for every event.
"""

from __future__ import annotations

from typing import Any

import orjson

from engine.providers import faults
from engine.providers.reasoning import ReasoningDelta
from engine.providers.toolcalls import Delta, ToolCallDelta
from engine.usage import Usage

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


def json_object(provider: str, data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise faults.cut(provider) from None
    if not isinstance(value, dict):
        raise faults.cut(provider)
    return value


def count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class OpenAIEvents:
    """Chat Completions chunks: choice 0's `delta.content`, `delta.refusal`, `delta.tool_calls`
    and `finish_reason`, `usage`; `[DONE]`. Other choices (`n` > 1) are ignored, never mixed
    into choice 0's text.

    Reasoning: OpenAI streams none of its reasoning text, only its count
    (`usage.completion_tokens_details.reasoning_tokens`); OpenAI-compatible upstreams that do
    stream it put it in `delta.reasoning_content` (or `delta.reasoning`), taken as reasoning,
    never as text."""

    __slots__ = ("finish_reason", "usage", "done", "refusal", "_refused")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self.refusal: str | None = None
        self._refused: list[str] = []

    def on_event(self, event: str | None, data: bytes) -> Out:
        """The text delta of one event, if any; raises our error for an in-stream error."""
        if data.startswith(b"[DONE]"):
            self.done = True
            return None
        chunk = json_object("openai", data)
        if chunk.get("error"):
            # The SDK raises a plain APIError for this, which was always "the stream broke off".
            raise faults.cut("openai")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            output = usage.get("completion_tokens_details")
            thought = output.get("reasoning_tokens") if isinstance(output, dict) else None
            self.usage = Usage(
                count(usage.get("prompt_tokens")),
                count(usage.get("completion_tokens")),
                count(cached),
                count(thought),
            )
        choices = chunk.get("choices")
        choice = _first_choice(choices)
        if choice is None:
            return None
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            # A refusal ends with a plain `stop`: it is the provider's content filter at work.
            self.finish_reason = "content_filter" if self._refused else finish
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return None
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused.append(refusal)
            self.refusal = "".join(self._refused)
            if self.finish_reason is not None:
                self.finish_reason = "content_filter"
        content = delta.get("content")
        text = content if isinstance(content, str) and content else None
        calls = delta.get("tool_calls")
        thought = _reasoning_of(delta)
        if thought is None and (not calls or not isinstance(calls, list)):
            return text
        out: list[Delta] = [ReasoningDelta(thought)] if thought else []
        if text:
            out.append(text)
        if calls and isinstance(calls, list):
            out.extend(openai_tool_deltas(calls))
        return out


def _reasoning_of(delta: dict[str, Any]) -> str | None:
    """The reasoning text of an OpenAI-compatible delta (`reasoning_content`, or `reasoning`
    as some gateways name it), if any."""
    for name in ("reasoning_content", "reasoning"):
        value = delta.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _first_choice(choices: Any) -> dict[str, Any] | None:
    """The choice with index 0 (a chunk of an `n` > 1 answer may carry another one only)."""
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


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
