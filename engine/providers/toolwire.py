"""Tools, tool choice and tool turns in each provider's wire format. Pure: no I/O.

The neutral shapes are in `engine.providers.toolcalls`; each adapter calls the functions of
its own provider here when it builds a request body.
"""

from __future__ import annotations

from typing import Any

from engine.providers.parts import anthropic_content, gemini_parts, openai_content
from engine.providers.toolcalls import arguments_object

# --- OpenAI Chat Completions ---------------------------------------------------------------


def openai_message(message: dict[str, Any]) -> dict[str, Any]:
    """A neutral message as a Chat Completions message (`tool_calls`, `role: tool`, image
    parts)."""
    role = message["role"]
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message["tool_call_id"],
            "content": message["content"],
        }
    if role == "assistant" and message.get("tool_calls"):
        return {
            "role": "assistant",
            "content": message.get("content") or None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in message["tool_calls"]
            ],
        }
    return {"role": role, "content": openai_content(message["content"])}


def openai_tools(settings: dict[str, Any], body: dict[str, Any]) -> None:
    """`tools` and `tool_choice` into a Chat Completions body."""
    tools = settings.get("tools")
    if not tools:
        return
    body["tools"] = [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description") or "",
                "parameters": t.get("parameters") or {"type": "object", "properties": {}},
            },
        }
        for t in tools
    ]
    choice = settings.get("tool_choice")
    if isinstance(choice, dict):
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice:
        body["tool_choice"] = choice


# --- Anthropic Messages ---------------------------------------------------------------------


def anthropic_messages(
    messages: list[dict[str, Any]], thinking: bool = False
) -> list[dict[str, Any]]:
    """Neutral non-system messages as Messages API turns: an assistant's calls as `tool_use`
    blocks, and the answers (consecutive `tool` messages) as one user turn of
    `tool_result` blocks. With `thinking` on, an assistant turn's kept thinking blocks
    (`thinking`: signed `thinking` and verbatim `redacted_thinking` blocks) go first, as
    Anthropic requires of a tool-use continuation."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m["tool_call_id"],
                "content": m["content"],
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "user" and _all_results(last["content"]):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif role == "assistant" and m.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if thinking and isinstance(m.get("thinking"), list):
                blocks.extend(dict(b) for b in m["thinking"] if isinstance(b, dict))
            if m.get("content"):
                blocks.append({"type": "text", "text": m["content"]})
            blocks.extend(
                {
                    "type": "tool_use",
                    "id": c["id"],
                    "name": c["name"],
                    "input": arguments_object(c["arguments"]),
                }
                for c in m["tool_calls"]
            )
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": role, "content": anthropic_content(m["content"])})
    return out


def _all_results(content: Any) -> bool:
    return isinstance(content, list) and all(b.get("type") == "tool_result" for b in content)


def anthropic_tools(settings: dict[str, Any], params: dict[str, Any]) -> None:
    """`tools` (`input_schema`) and `tool_choice` (`auto`, `any`, `tool`, `none`)."""
    tools = settings.get("tools")
    if not tools:
        return
    params["tools"] = [
        {
            "name": t["name"],
            "description": t.get("description") or "",
            "input_schema": t.get("parameters") or {"type": "object", "properties": {}},
        }
        for t in tools
    ]
    choice = settings.get("tool_choice")
    if isinstance(choice, dict):
        params["tool_choice"] = {"type": "tool", "name": choice["name"]}
    elif choice == "required":
        params["tool_choice"] = {"type": "any"}
    elif choice in ("auto", "none"):
        params["tool_choice"] = {"type": choice}


# --- Gemini generateContent -----------------------------------------------------------------


def gemini_content(message: dict[str, Any]) -> dict[str, Any]:
    """A neutral non-system message as a Gemini content: calls as `functionCall` parts,
    answers as `functionResponse` parts (the output under `response.output`)."""
    role = message["role"]
    if role == "tool":
        response = {"name": message["name"], "response": {"output": message["content"]}}
        return {"role": "user", "parts": [{"functionResponse": response}]}
    parts: list[dict[str, Any]] = []
    if message.get("content") or not message.get("tool_calls"):
        parts.extend(gemini_parts(message.get("content")))
    for c in message.get("tool_calls") or ():
        parts.append(
            {"functionCall": {"name": c["name"], "args": arguments_object(c["arguments"])}}
        )
    return {"role": "model" if role == "assistant" else "user", "parts": parts}


def gemini_contents(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Contents in order; the answers to one step's calls go into one user content."""
    out: list[dict[str, Any]] = []
    for m in messages:
        content = gemini_content(m)
        previous = out[-1] if out else None
        if (
            m["role"] == "tool"
            and previous is not None
            and all("functionResponse" in p for p in previous["parts"])
        ):
            previous["parts"].extend(content["parts"])
        else:
            out.append(content)
    return out


_GEMINI_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def gemini_tools(settings: dict[str, Any], body: dict[str, Any]) -> None:
    """`tools.functionDeclarations` and `toolConfig.functionCallingConfig`."""
    tools = settings.get("tools")
    if not tools:
        return
    declarations = []
    for t in tools:
        declaration: dict[str, Any] = {"name": t["name"], "description": t.get("description") or ""}
        if t.get("parameters"):
            declaration["parameters"] = t["parameters"]
        declarations.append(declaration)
    body["tools"] = [{"functionDeclarations": declarations}]
    choice = settings.get("tool_choice")
    if isinstance(choice, dict):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["name"]]}
        body["toolConfig"] = {"functionCallingConfig": config}
    elif choice in _GEMINI_MODES:
        body["toolConfig"] = {"functionCallingConfig": {"mode": _GEMINI_MODES[choice]}}
