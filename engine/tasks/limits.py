"""Size limits of one execute request, checked before any row or provider call.

Each refusal is `invalid_request` with `details.limit` naming the limit (a stable string:
`messages`, `message_chars`, `variables`, `max_tokens`, `images`) and `details.max` its
value, besides the usual `details.errors`; images too large are `payload_too_large` the
same way (`image_bytes`, `images_total_bytes`). The payload size limit is checked earlier,
when the payload is decoded (`payload_too_large`, `payload_bytes`), and the transports'
before that; its default leaves room for every image these limits allow (engine.settings
`payload_room`; the whole order is docs/tenancy.md "Limits against floods and hostile
input").
"""

from __future__ import annotations

from typing import Any

from engine.errors import ClientError, InvalidRequest, PayloadTooLarge
from engine.protocol.content import ImagePart, decoded_size
from engine.protocol.requests import ExecuteRequest, Message
from engine.protocol.tools import check_tools
from engine.providers.parts import text_of
from engine.settings import Settings


def _refuse(
    limit: str, maximum: int, field: str, message: str, error: type[ClientError] = InvalidRequest
) -> ClientError:
    return error(
        message,
        details={"limit": limit, "max": maximum, "errors": [{"field": field, "message": message}]},
    )


def check_request_limits(req: ExecuteRequest, settings: Settings) -> None:
    """Raise InvalidRequest for the first limit `req` exceeds (or its tools break)."""
    tool_errors = check_tools(req.tools, req.tool_choice)
    if tool_errors:
        raise InvalidRequest("invalid tools", details={"errors": tool_errors})
    if len(req.messages) > settings.max_messages:
        raise _refuse(
            "messages",
            settings.max_messages,
            "messages",
            f"at most {settings.max_messages} messages per request",
        )
    for i, message in enumerate(req.messages):
        if len(text_of(message.content)) > settings.max_message_chars:
            raise _refuse(
                "message_chars",
                settings.max_message_chars,
                f"messages.{i}.content",
                f"at most {settings.max_message_chars} characters per message",
            )
    check_image_limits(req.messages, settings)
    if len(req.variables) > settings.max_variables:
        raise _refuse(
            "variables",
            settings.max_variables,
            "variables",
            f"at most {settings.max_variables} variables per request",
        )


def check_image_limits(messages: list[Message], settings: Settings) -> None:
    """Raise for more than MAX_IMAGES images, or one (or all) larger than allowed decoded."""
    images = [
        (f"messages.{i}.content.{j}", part)
        for i, m in enumerate(messages)
        if isinstance(m.content, list)
        for j, part in enumerate(m.content)
        if isinstance(part, ImagePart)
    ]
    if len(images) > settings.max_images:
        field = images[settings.max_images][0]
        message = f"at most {settings.max_images} images per request"
        raise _refuse("images", settings.max_images, field, message)
    total = 0
    for field, part in images:
        size = decoded_size(part.data) if part.data is not None else 0
        total += size
        if size > settings.max_image_bytes:
            message = f"at most {settings.max_image_bytes} bytes per image (decoded)"
            raise _refuse(
                "image_bytes", settings.max_image_bytes, f"{field}.data", message, PayloadTooLarge
            )
        if total > settings.max_images_total_bytes:
            maximum = settings.max_images_total_bytes
            message = f"at most {maximum} bytes of images per request (decoded)"
            raise _refuse("images_total_bytes", maximum, f"{field}.data", message, PayloadTooLarge)


def output_ceiling(settings: Settings, tier: str) -> int:
    """The largest `max_tokens` a user of `tier` may ask for."""
    by_tier = {
        "premium": settings.max_output_tokens_premium,
        "byok": settings.max_output_tokens_byok,
    }.get(tier, settings.max_output_tokens_free)
    return settings.max_output_tokens if by_tier < 0 else min(by_tier, settings.max_output_tokens)


def check_output_limit(model_settings: dict[str, Any], tier: str, settings: Settings) -> None:
    """Raise InvalidRequest when the merged settings ask for more tokens than the tier's
    ceiling (a prompt's saved settings count, not only the request's)."""
    ceiling = output_ceiling(settings, tier)
    asked = model_settings.get("max_tokens")
    if isinstance(asked, int) and asked > ceiling:
        raise _refuse(
            "max_tokens",
            ceiling,
            "settings.max_tokens",
            f"at most {ceiling} output tokens per task for the {tier} tier",
        )
