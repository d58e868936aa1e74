"""Size limits of one execute request, checked before any row or provider call.

Each refusal is `invalid_request` with `details.limit` naming the limit (a stable string:
`messages`, `message_chars`, `variables`) and `details.max` its value, besides the usual
`details.errors`. The payload size limit is checked earlier (`payload_too_large`).
"""

from __future__ import annotations

from engine.errors import InvalidRequest
from engine.protocol.requests import ExecuteRequest
from engine.settings import Settings


def _refuse(limit: str, maximum: int, field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        message,
        details={"limit": limit, "max": maximum, "errors": [{"field": field, "message": message}]},
    )


def check_request_limits(req: ExecuteRequest, settings: Settings) -> None:
    """Raise InvalidRequest for the first limit `req` exceeds."""
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
