"""Message content with images, in the neutral shape and in each provider's wire format.
Pure: no I/O.

A neutral message's `content` is a string, or a list of parts (docs/protocol.md "Images"):
`{"type": "text", "text"}`, `{"type": "image", "url"}` (https, passed on: we never fetch it)
or `{"type": "image", "data", "media_type"}` (base64). Each adapter maps a message's content
with the function of its provider here.
"""

from __future__ import annotations

from typing import Any

# What one image counts for where no provider has counted yet: the context trimming's
# estimate (about four characters a token) and the simulator's input tokens.
IMAGE_TOKENS = 1_600
IMAGE_CHARS = IMAGE_TOKENS * 4


def text_of(content: Any) -> str:
    """The text of a content: the string itself, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def images_of(content: Any) -> list[dict[str, Any]]:
    """The image parts of a content (none for a string)."""
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, dict) and p.get("type") == "image"]


def content_chars(content: Any) -> int:
    """Characters a content counts for in the context estimate: its text, and IMAGE_CHARS an
    image whatever its size (the providers scale images down to a bounded token cost)."""
    return len(text_of(content)) + IMAGE_CHARS * len(images_of(content))


def image_count(messages: list[dict[str, Any]]) -> int:
    """Images over every message."""
    return sum(len(images_of(m.get("content"))) for m in messages)


def data_url(part: dict[str, Any]) -> str:
    """An image part as a URL: its own, or a `data:` URL of its base64 bytes."""
    if part.get("url"):
        return str(part["url"])
    return f"data:{part['media_type']};base64,{part['data']}"


def openai_content(content: Any) -> Any:
    """Chat Completions content: a string as it is; parts as `text` and `image_url` parts."""
    if not isinstance(content, list):
        return content
    out: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "image":
            out.append({"type": "image_url", "image_url": {"url": data_url(part)}})
        else:
            out.append({"type": "text", "text": part.get("text") or ""})
    return out


def anthropic_content(content: Any) -> Any:
    """Messages API content: a string as it is; parts as `text` and `image` blocks
    (`source` of type `url` or `base64`)."""
    if not isinstance(content, list):
        return content
    out: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") != "image":
            out.append({"type": "text", "text": part.get("text") or ""})
        elif part.get("url"):
            out.append({"type": "image", "source": {"type": "url", "url": part["url"]}})
        else:
            source = {"type": "base64", "media_type": part["media_type"], "data": part["data"]}
            out.append({"type": "image", "source": source})
    return out


def gemini_parts(content: Any) -> list[dict[str, Any]]:
    """Gemini parts: text as `text`, base64 images as `inlineData`, URL images as
    `fileData` (the Gemini API fetches public https URLs itself)."""
    if not isinstance(content, list):
        return [{"text": content or ""}]
    out: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") != "image":
            out.append({"text": part.get("text") or ""})
        elif part.get("url"):
            data: dict[str, Any] = {"fileUri": part["url"]}
            if part.get("media_type"):
                data["mimeType"] = part["media_type"]
            out.append({"fileData": data})
        else:
            out.append({"inlineData": {"mimeType": part["media_type"], "data": part["data"]}})
    return out
