"""Size limits of one execute request, checked before any row or provider call.

Each refusal is `invalid_request` with `details.limit` naming the limit (a stable string:
`messages`, `message_chars`, `variables`, `max_tokens`) and `details.max` its value,
besides the usual `details.errors`. The payload size limit is checked earlier
(`payload_too_large`).
"""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidRequest
from engine.protocol.requests import ExecuteRequest
from engine.protocol.tools import check_tools
from engine.settings import Settings


def _refuse(limit: str, maximum: int, field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
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
        if len(message.content) > settings.max_message_chars:
            raise _refuse(
                "message_chars",
                settings.max_message_chars,
                f"messages.{i}.content",
                f"at most {settings.max_message_chars} characters per message",
            )
    if len(req.variables) > settings.max_variables:
        raise _refuse(
            "variables",
            settings.max_variables,
            "variables",
            f"at most {settings.max_variables} variables per request",
        )


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
