"""Anthropic Messages API server-sent events decoded into deltas, finish, usage and refusal.

Pure: events in (from `engine.providers.sse.SSEDecoder`), deltas out; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import ProviderFault, ProviderRejected, ProviderUnavailable
from engine.providers import faults
from engine.providers.reasoning import ReasoningDelta
from engine.providers.sse import Out, json_object
from engine.providers.toolcalls import ToolCallDelta
from engine.usage import Usage

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
    """Messages API events: text deltas, usage, the stop reason, `error` events.

    A body may hold several messages one after the other (`message_start` ... `message_stop`,
    as with server-side tools): it is read to its end, their text joined, their usage summed
    and the last one's stop reason kept. Each message's usage is its `message_delta`'s
    cumulative counts over its `message_start`'s, so a message whose `message_delta` carries
    none keeps the counts of its start.

    Reasoning: a `thinking` block's `thinking_delta`s are reasoning (never text); its
    `signature_delta` and a `redacted_thinking` block's `data` stream nothing but are kept,
    in order, in `thinking_blocks`: Anthropic wants them back, unchanged, before the
    `tool_use` blocks of a tool-use continuation. Anthropic counts thinking inside
    `output_tokens` without a count of its own, so `usage.reasoning_tokens` is the output
    less the answer's estimated tokens (text and tool input, about four characters a token).
    """

    __slots__ = (
        "finish_reason",
        "usage",
        "done",
        "refusal",
        "_stop_reason",
        "_counts",
        "_total",
        "_headers",
        "_tool_blocks",
        "_thinking",
        "thinking_blocks",
        "_answer_chars",
    )

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False  # never set: the whole body is read (several messages)
        self.refusal: str | None = None
        self._tool_blocks: set[int] = set()  # content blocks that are tool_use
        self._stop_reason: str | None = None
        self._counts: dict[str, int] = {}  # of the current message
        self._total: Usage | None = None  # of the messages that ended
        self._headers = headers  # of the response, for an in-stream error's retry-after
        self._thinking: dict[int, dict[str, Any]] = {}  # open thinking blocks by index
        # Thinking and redacted_thinking blocks as they came, to send back (class docstring).
        self.thinking_blocks: list[dict[str, Any]] = []
        self._answer_chars = 0  # text and tool input: what is not reasoning

    def on_event(self, event: str | None, data: bytes) -> Out:
        """The text delta of one event, if any; raises our error for an `error` event."""
        if event is None or event == "ping" or not data:
            return None  # the SDK skips these too
        message = json_object("anthropic", data)
        if event == "error":
            error = message.get("error")
            kind = error.get("type") if isinstance(error, dict) else None
            raise anthropic_error(kind if isinstance(kind, str) else None, 200, self._headers)
        kind = message.get("type")
        if kind == "content_block_delta":
            return self._delta(message.get("index"), message.get("delta"))
        elif kind == "content_block_start":
            block = message.get("content_block")
            if isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking"):
                return self._thinking_start(message.get("index"), block)
            return self._tool_start(message.get("index"), block)
        elif kind == "message_start":
            self._start(message.get("message"))
        elif kind == "message_delta":
            delta = message.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            self._stop_reason = stop if isinstance(stop, str) else self._stop_reason
            self._count(message.get("usage"))
            # Only message_delta carries the real output count (message_start's is a
            # placeholder); before it, a cut or cancelled stream is estimated.
            self.usage = self._with_thought(_add(self._total, self._usage()))
        elif kind == "message_stop":
            self._stop()
        return None

    def _delta(self, index: Any, delta: Any) -> Out:
        """A `content_block_delta`: text, a tool input fragment, thinking or its signature."""
        if not isinstance(delta, dict):
            return None
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                self._answer_chars += len(text)
                return text
            return None
        if kind == "input_json_delta":
            return self._tool_piece(index, delta.get("partial_json"))
        block = self._thinking.get(index) if isinstance(index, int) else None
        if block is None:
            return None
        if kind == "thinking_delta":
            text = delta.get("thinking")
            if isinstance(text, str) and text:
                block["thinking"] += text
                return [ReasoningDelta(text)]
        elif kind == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str):
                block["signature"] = block.get("signature", "") + signature
        return None

    def _thinking_start(self, index: Any, block: dict[str, Any]) -> Out:
        """A `thinking` block (its text follows in deltas) or a `redacted_thinking` one
        (kept verbatim: its `data` is encrypted and streams nothing)."""
        if block.get("type") == "redacted_thinking":
            self.thinking_blocks.append(dict(block))
            return None
        if not isinstance(index, int):
            return None
        text = block.get("thinking")
        text = text if isinstance(text, str) else ""
        kept: dict[str, Any] = {"type": "thinking", "thinking": text}
        signature = block.get("signature")
        if isinstance(signature, str) and signature:
            kept["signature"] = signature
        self._thinking[index] = kept
        self.thinking_blocks.append(kept)
        return [ReasoningDelta(kept["thinking"])] if kept["thinking"] else None

    def _start(self, start: Any) -> None:
        """A message begins: not finished until its own `message_stop`."""
        self.finish_reason = None
        self._stop_reason = None
        self._counts = {}
        self._tool_blocks = set()
        self._thinking = {}
        self._count(start.get("usage") if isinstance(start, dict) else None)

    def _stop(self) -> None:
        """The terminal event of a message: only now did the provider end it itself."""
        stop = self._stop_reason or "end_turn"
        self.finish_reason = ANTHROPIC_FINISH.get(stop, "stop")
        if stop == "refusal":
            self.refusal = stop
        self._total = _add(self._total, self._usage())
        self._counts = {}
        self.usage = self._with_thought(self._total)

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
        self._answer_chars += len(partial)
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

    def _with_thought(self, usage: Usage) -> Usage:
        """`usage` with its reasoning tokens: thinking has no count of its own, so the output
        less the answer's estimate (about four characters a token)."""
        if not self.thinking_blocks:
            return usage
        answer = (self._answer_chars + 3) // 4
        thought = max(0, usage.output_tokens - answer)
        return Usage(usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, thought)


def _add(total: Usage | None, usage: Usage) -> Usage:
    if total is None:
        return usage
    return Usage(
        total.input_tokens + usage.input_tokens,
        total.output_tokens + usage.output_tokens,
        total.cached_input_tokens + usage.cached_input_tokens,
    )
