"""Errors with the server's stable codes (`invalid_request`, `missing_variables`, ...)."""

from __future__ import annotations

from typing import Any

RETRYABLE = frozenset(
    {
        "rate_limited",
        "run_busy",
        "provider_unavailable",
        "service_unavailable",
        "timeout",
        "internal",
    }
)


class PromptrelayError(Exception):
    """An error ack, a refused connection, or the client giving up. `code` is stable."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details

    @property
    def retryable(self) -> bool:
        """True where the same request may succeed later."""
        return self.code in RETRYABLE

    @classmethod
    def from_body(cls, body: Any) -> PromptrelayError:
        """From an error ack's `error`, or a connect_error's `data`."""
        error = body if isinstance(body, dict) else {}
        code = error.get("code")
        message = error.get("message")
        details = error.get("details")
        return cls(
            code if isinstance(code, str) else "internal",
            message if isinstance(message, str) else "unknown error",
            details if isinstance(details, dict) else None,
        )


class ClientClosed(PromptrelayError):
    """The client was closed while the call was waiting."""

    def __init__(self) -> None:
        super().__init__("client_closed", "the client was closed")
