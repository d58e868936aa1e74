"""The parts of a Chat Completions request that carry a conversation, as pydantic models and
their mapping onto our neutral shapes (engine.protocol.content, docs/tools.md): messages
with image parts, an assistant's `tool_calls` and `role: "tool"` results, and the tools
offered with `tool_choice`. Pure: no I/O."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from engine.errors import InvalidRequest

_DATA_URL = re.compile(r"^data:(?P<type>[a-z]+/[a-z0-9.+-]+);base64,(?P<data>.*)$", re.DOTALL)


class _Open(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImageURL(_Open):
    url: str
    detail: Literal["auto"] | None = None  # `low` / `high` have no counterpart: refused


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL


class FunctionCall(_Open):
    name: str
    arguments: str


class ToolCall(_Open):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None  # accepted and not used: our messages carry no author names
    tool_calls: list[ToolCall] | None = None  # an assistant's calls
    tool_call_id: str | None = None  # a tool result's call
    refusal: str | None = None  # an earlier answer's refusal, as the SDK echoes it back


class Function(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: Literal[False] | None = None  # strict schemas are not enforced by us: refused


class FunctionTool(_Open):
    type: Literal["function"]
    function: Function


class NamedFunction(_Open):
    name: Annotated[str, StringConstraints(max_length=200)]


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: NamedFunction


ToolChoiceParam = Literal["auto", "none", "required"] | NamedToolChoice


def _refused(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, details={"errors": [{"field": param, "message": message}]})


def image_part(part: ImagePart) -> dict[str, Any]:
    """An `image_url` part as ours: a `data:` URL becomes base64 `data` with its media
    type; any other URL is passed on (and checked as ours are)."""
    found = _DATA_URL.match(part.image_url.url)
    if found is None:
        return {"type": "image", "url": part.image_url.url}
    return {"type": "image", "data": found["data"], "media_type": found["type"]}


def _content(m: ChatMessage) -> Any:
    if m.content is None:
        return ""
    if isinstance(m.content, str):
        return m.content
    if m.role != "user":  # only the user sends images: others' parts are text, joined
        return "".join(p.text for p in m.content if isinstance(p, TextPart))
    if all(isinstance(p, TextPart) for p in m.content):
        return "".join(p.text for p in m.content if isinstance(p, TextPart))
    return [
        {"type": "text", "text": p.text} if isinstance(p, TextPart) else image_part(p)
        for p in m.content
    ]


def neutral_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The conversation in our neutral shape; a tool result takes its tool's name from the
    assistant call it answers (Gemini needs the name)."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        role = "system" if m.role == "developer" else m.role
        message: dict[str, Any] = {"role": role, "content": _content(m)}
        if m.tool_calls:
            if role != "assistant":
                raise _refused(f"messages.{i}.tool_calls", "tool_calls only on assistant messages")
            message["tool_calls"] = [
                {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                for c in m.tool_calls
            ]
            names.update((c.id, c.function.name) for c in m.tool_calls)
        if role == "tool":
            if m.tool_call_id is None or m.tool_call_id not in names:
                raise _refused(
                    f"messages.{i}.tool_call_id",
                    "a tool message answers a tool call of an earlier assistant message",
                )
            message["tool_call_id"] = m.tool_call_id
            message["name"] = names[m.tool_call_id]
        out.append(message)
    return out


def neutral_tools(tools: list[FunctionTool] | None) -> list[dict[str, Any]] | None:
    """OpenAI's function tools as ours (`{name, description, parameters}`)."""
    if tools is None:
        return None
    out = []
    for t in tools:
        tool: dict[str, Any] = {"name": t.function.name}
        if t.function.description is not None:
            tool["description"] = t.function.description
        if t.function.parameters is not None:
            tool["parameters"] = t.function.parameters
        out.append(tool)
    return out


def neutral_choice(choice: ToolChoiceParam | None) -> Any:
    """`tool_choice` as ours: the same words, or `{name}` for a named function."""
    if isinstance(choice, NamedToolChoice):
        return {"name": choice.function.name}
    return choice


def openai_tool_calls(done: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A finished task's calls as a `message.tool_calls` list (arguments as JSON text)."""
    calls = done.get("tool_calls")
    if not calls:
        return None
    out = []
    for c in calls:
        args = c.get("arguments")
        text = c.get("arguments_text") if args is None else json.dumps(args, ensure_ascii=False)
        out.append(
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": text or ""},
            }
        )
    return out


def tool_call_delta(piece: dict[str, Any], first: bool) -> dict[str, Any]:
    """A `task_tool_call` piece as a chunk's `delta.tool_calls` entry: id, type and name on
    a call's first piece only, as OpenAI streams them."""
    entry: dict[str, Any] = {
        "index": piece["index"],
        "function": {"arguments": piece.get("arguments_delta") or ""},
    }
    if first:
        entry["id"] = piece["call_id"]
        entry["type"] = "function"
        entry["function"]["name"] = piece["name"]
    return {"tool_calls": [entry]}
