"""Message content in the client protocol: text and image parts (docs/protocol.md "Images"),
and the tool turns a request may carry (docs/tools.md), with the rules of each role.

We never fetch an image URL: it is passed on to the provider, which fetches it. So a URL
must be `https` with a public host name; `file:`, `http:`, credentials in the URL and
loopback or private addresses are refused.
"""

from __future__ import annotations

import binascii
import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    StringConstraints,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.protocol.tools import ToolName

MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MediaType = Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
MAX_URL_CHARS = 4_096
CallId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# The first bytes of each media type, so a mislabelled image is refused here, not upstream
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: Annotated[str, StringConstraints(max_length=1_000_000)]


class ImagePart(_Strict):
    """An image by `url` (https, passed on) or by `data` (base64) with its `media_type`."""

    type: Literal["image"]
    url: Annotated[str, StringConstraints(max_length=MAX_URL_CHARS)] | None = None
    media_type: MediaType | None = None
    data: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            check_image_url(value)
        return value

    @field_validator("data")
    @classmethod
    def _data(cls, value: str | None, info: ValidationInfo) -> str | None:
        media_type = info.data.get("media_type")
        if value is not None and media_type is not None:
            check_image_data(value, media_type)
        return value

    @model_validator(mode="after")
    def _source(self) -> ImagePart:
        if (self.url is None) == (self.data is None):
            raise ValueError("an image has either url or data")
        if self.data is not None and self.media_type is None:
            raise ValueError(
                f"an image with data needs media_type: one of {', '.join(MEDIA_TYPES)}"
            )
        return self


def _part_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return {"text": "~text", "image": "~image"}.get(kind) if isinstance(kind, str) else None


def _content_kind(value: Any) -> str:
    return "~string" if isinstance(value, str) else "~parts"


# Tags start with `~`: field paths leave them out (engine.protocol.requests.field_errors)
ContentPart = Annotated[
    Annotated[TextPart, Tag("~text")] | Annotated[ImagePart, Tag("~image")],
    Discriminator(
        _part_kind,
        custom_error_type="part_type",
        custom_error_message="a part's type is text or image",
    ),
]
Content = Annotated[
    Annotated[Annotated[str, StringConstraints(max_length=1_000_000)], Tag("~string")]
    | Annotated[list[ContentPart], Tag("~parts")],
    Discriminator(_content_kind),
]


class MessageToolCall(_Strict):
    """One call of an assistant message (`arguments` as JSON text), as docs/tools.md stores."""

    id: CallId
    name: ToolName
    arguments: Annotated[str, StringConstraints(max_length=200_000)]


def check_image_url(url: str) -> None:
    """Raise ValueError unless `url` is https with a public host and no credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme != "https":
        raise ValueError("an image url must be https (we pass it on; nothing else is taken)")
    if not host or parts.username is not None or parts.password is not None:
        raise ValueError("an image url needs a host name and no credentials")
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise ValueError("an image url must have a public host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address.is_global:
        raise ValueError("an image url must have a public host")


def check_image_data(data: str, media_type: str) -> None:
    """Raise ValueError unless `data` is valid base64 of an image of `media_type`."""
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:
        raise ValueError("data is not valid base64") from None
    if not raw:
        raise ValueError("data is empty")
    if not raw.startswith(_MAGIC[media_type]) or (
        media_type == "image/webp" and raw[8:12] != b"WEBP"
    ):
        raise ValueError(f"data is not an image of type {media_type}")


def decoded_size(data: str) -> int:
    """Bytes of valid base64 `data` once decoded."""
    return len(data) * 3 // 4 - data[-2:].count("=")


def check_message_shape(
    role: str, content: Any, calls: list[Any] | None, call_id: str | None, name: str | None
) -> None:
    """Raise ValueError when a message's fields do not fit its role: images only from the
    user, calls only on an assistant message, a tool result with its call id and tool name
    and text content."""
    if isinstance(content, list):
        if not content:
            raise ValueError("content needs at least one part")
        if role != "user" and any(isinstance(p, ImagePart) for p in content):
            raise ValueError("image parts are taken in user messages only")
    if calls is not None and role != "assistant":
        raise ValueError("tool_calls are taken on assistant messages only")
    if role == "tool":
        if call_id is None or name is None:
            raise ValueError("a tool message needs tool_call_id and name")
        if not isinstance(content, str):
            raise ValueError("a tool message's content is text")
    elif call_id is not None or name is not None:
        raise ValueError("tool_call_id and name are taken on tool messages only")
