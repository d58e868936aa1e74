"""One root error with a stable code and a message safe to show, split by fault."""

from __future__ import annotations

from typing import Any


class PromptrelayError(Exception):
    """Base of every error a client may see. `message` never holds secrets."""

    code = "internal"
    http_status = 500
    retryable = False

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        """The `error` object of an ack or an HTTP error body."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


class ClientError(PromptrelayError):
    """The caller's fault: bad input, unknown ids, limits."""

    code = "invalid_request"
    http_status = 400


class InvalidRequest(ClientError):
    code = "invalid_request"
    http_status = 400


class PayloadTooLarge(ClientError):
    code = "payload_too_large"
    http_status = 413


class NotFound(ClientError):
    code = "not_found"
    http_status = 404


class MethodNotAllowed(ClientError):
    """The path exists, not with this method; `details.allowed` lists the methods it has."""

    code = "method_not_allowed"
    http_status = 405


class Forbidden(ClientError):
    """The caller may see this but not change it (only for things they are a member of)."""

    code = "forbidden"
    http_status = 403


class MissingVariables(ClientError):
    code = "missing_variables"
    http_status = 400


class Unauthorized(ClientError):
    code = "unauthorized"
    http_status = 401


class ProviderFault(PromptrelayError):
    """The provider's fault (and only the provider's). `retryable` tells whether trying again
    may help."""

    code = "provider_error"
    http_status = 502


class ProviderRejected(ProviderFault):
    code = "provider_error"
    http_status = 502


class ProviderUnavailable(ProviderFault):
    code = "provider_unavailable"
    http_status = 503
    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # the provider's `retry-after`, when it sent one


class StreamTimeout(ProviderFault):
    code = "timeout"
    http_status = 504
    retryable = True


class ToolResultTimeout(ClientError):
    """A tool call's result did not come within TOOL_RESULT_TIMEOUT_S (docs/tools.md)."""

    code = "timeout"
    http_status = 504


class ServiceUnavailable(PromptrelayError):
    """Our own database or Redis is away or saturated: trying again shortly may help."""

    code = "service_unavailable"
    http_status = 503
    retryable = True


class InternalError(PromptrelayError):
    """Our fault. The message is generic; the log has the details."""

    code = "internal"
    http_status = 500


class QuotaExceeded(ClientError):
    """The tier's daily or monthly task quota is used up; `details` has limit, used, resets_at."""

    code = "quota_exceeded"
    http_status = 429


class RateLimited(ClientError):
    """Too many concurrent tasks, events or connections; `details.retry_after_ms`."""

    code = "rate_limited"
    http_status = 429
    retryable = True


class RunBusy(ClientError):
    """The run's previous turn is still running: a run holds one turn at a time. Try again
    once it has ended; `details.task_id` is the running task (null when it just ended)."""

    code = "run_busy"
    http_status = 409
    retryable = True


_FAULTS: dict[str, str] = {}


def fault_of(code: str) -> str:
    """Whose fault an error code is: `provider`, `service` (our database or Redis away),
    `internal` (a bug of ours) or `client`."""
    if not _FAULTS:
        stack: list[type[PromptrelayError]] = [PromptrelayError]
        while stack:
            cls = stack.pop()
            stack.extend(cls.__subclasses__())
            if issubclass(cls, ProviderFault):
                _FAULTS[cls.code] = "provider"
            elif issubclass(cls, ServiceUnavailable):
                _FAULTS[cls.code] = "service"
            elif issubclass(cls, ClientError):
                _FAULTS.setdefault(cls.code, "client")
    return _FAULTS.get(code, "internal")
