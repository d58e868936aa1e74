"""Gemini API server-sent events decoded into deltas, finish, usage and refusal.

Pure: events in (from `engine.providers.sse.SSEDecoder`), deltas out; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from engine.providers import faults
from engine.providers.reasoning import ReasoningDelta
from engine.providers.sse import Out, count, json_object
from engine.providers.toolcalls import Delta, ToolCallDelta
from engine.usage import Usage

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
    """`streamGenerateContent?alt=sse` responses: candidate 0's text parts, its thought parts
    (`thought: true`) as reasoning, never as text, its finish reason, `usageMetadata`
    (`thoughtsTokenCount` as reasoning tokens: Gemini bills them as output, and counts them
    apart from `candidatesTokenCount`, so output is their sum), a blocked prompt
    (`promptFeedback.blockReason`) and an `error` object in the stream. Other candidates are
    ignored, never mixed in."""

    __slots__ = ("finish_reason", "usage", "done", "refusal", "_calls", "_headers")

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self.refusal: str | None = None
        self._calls = 0  # functionCall parts seen: the next one's index
        self._headers = headers

    def on_event(self, event: str | None, data: bytes) -> Out:
        """The text of one response, if any; raises our error for an in-stream error."""
        response = json_object("google", data)
        error = response.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            status = code if isinstance(code, int) and code else 500
            raise faults.from_status("google", status, self._headers)
        meta = response.get("usageMetadata")
        if isinstance(meta, dict):
            thoughts = count(meta.get("thoughtsTokenCount"))
            output = count(meta.get("candidatesTokenCount")) + thoughts
            self.usage = Usage(
                count(meta.get("promptTokenCount")),
                output,
                count(meta.get("cachedContentTokenCount")),
                thoughts,
            )
        feedback = response.get("promptFeedback")
        blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if isinstance(blocked, str) and blocked:
            # The prompt itself was blocked: no candidate follows, and this is the end.
            self.refusal, self.finish_reason = blocked, "content_filter"
        candidates = response.get("candidates")
        if not isinstance(candidates, list):
            return None
        for candidate in candidates:
            if isinstance(candidate, dict) and candidate.get("index", 0) == 0:
                return self._candidate(candidate)
        return None

    def _candidate(self, candidate: dict[str, Any]) -> Out:
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        out: list[Delta] = []
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str) and text and part.get("thought") is True:
                out.append(ReasoningDelta(text))
            elif isinstance(text, str) and text and not part.get("thought"):
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
            if mapped == "content_filter":
                self.refusal = reason
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
