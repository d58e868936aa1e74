"""Tool calls as the adapters stream them, in one provider-neutral shape. Pure: no I/O.

A decoder turns its provider's wire events into `ToolCallDelta`s (a call's position in the
answer, its id and name when known, and a fragment of its argument text); the runner
feeds them to a `ToolCallAssembler`, which fills in the id and name on every piece (for the
subscribers) and, at the end, parses each call's arguments.

The neutral shapes (docs/tools.md):
- a tool: `{name, description, parameters}` (`parameters` a JSON Schema object);
- `tool_choice`: `"auto"`, `"none"`, `"required"` or `{"name": ...}`;
- a finished call: `{id, name, arguments}` (`arguments` parsed JSON; when the provider's
  text is not a JSON object: `arguments` is null, `arguments_text` the text as it came and
  `arguments_error` says why);
- in a conversation: `{"role": "assistant", "content", "tool_calls": [{id, name,
  arguments}]}` (`arguments` as JSON text) and `{"role": "tool", "tool_call_id", "name",
  "content"}`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from engine.providers.reasoning import ReasoningDelta


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a streamed tool call: `index` is its place among the answer's calls."""

    index: int
    call_id: str | None
    name: str | None
    arguments: str  # a fragment of the argument text (may be empty)


# What a provider stream yields: answer text, a piece of a call, or a piece of reasoning.
Delta = str | ToolCallDelta | ReasoningDelta


@dataclass
class _Call:
    call_id: str
    name: str
    parts: list[str] = field(default_factory=list)


def new_call_id() -> str:
    """An id for a call the provider gave none (Gemini may not)."""
    return "call_" + secrets.token_hex(12)


def parse_arguments(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the arguments, None) or (None, why not): arguments are a JSON object; empty is {}."""
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError:
        return None, "the arguments are not valid JSON"
    if not isinstance(value, dict):
        return None, "the arguments are not a JSON object"
    return value, None


class ToolCallAssembler:
    """The calls of one answer, from their pieces, in the order they started."""

    def __init__(self) -> None:
        self._calls: dict[int, _Call] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, delta: ToolCallDelta) -> ToolCallDelta:
        """Take a piece; returns it with the call's id and name filled in."""
        call = self._calls.get(delta.index)
        if call is None:
            call = _Call(delta.call_id or new_call_id(), delta.name or "")
            self._calls[delta.index] = call
        elif delta.name and not call.name:
            call.name = delta.name
        if delta.arguments:
            call.parts.append(delta.arguments)
        return ToolCallDelta(delta.index, call.call_id, call.name, delta.arguments)

    def calls(self) -> list[dict[str, Any]]:
        """The finished calls: `{id, name, arguments}`, with `arguments_text` and
        `arguments_error` when the arguments are not a JSON object."""
        out: list[dict[str, Any]] = []
        for index in sorted(self._calls):
            call = self._calls[index]
            text = "".join(call.parts)
            arguments, error = parse_arguments(text)
            item: dict[str, Any] = {"id": call.call_id, "name": call.name, "arguments": arguments}
            if error is not None:
                item["arguments_text"] = text
                item["arguments_error"] = error
            out.append(item)
        return out


def assistant_message(
    text: str, calls: list[dict[str, Any]], thinking: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The stored assistant turn that asked for `calls` (arguments kept as JSON text), with
    the provider's `thinking` blocks to send back with it, if any (docs/tools.md)."""
    message = {
        "role": "assistant",
        "content": text,
        "tool_calls": [
            {
                "id": c["id"],
                "name": c["name"],
                "arguments": c.get("arguments_text")
                if c.get("arguments") is None
                else json.dumps(c["arguments"], separators=(",", ":"), ensure_ascii=False),
            }
            for c in calls
        ],
    }
    if thinking:
        message["thinking"] = thinking
    return message


def tool_message(call: dict[str, Any], output: str) -> dict[str, Any]:
    """The stored answer to one call."""
    return {"role": "tool", "tool_call_id": call["id"], "name": call["name"], "content": output}


def arguments_object(text: str) -> dict[str, Any]:
    """A stored call's argument text as an object for providers that take one (Anthropic,
    Gemini); text that is not an object is sent as `{"_raw": text}` rather than dropped."""
    value, error = parse_arguments(text)
    return value if value is not None and error is None else {"_raw": text}
