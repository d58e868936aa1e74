"""Provider faults in our terms, shared by the adapters: HTTP status to error, `retry-after`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from engine.errors import ProviderFault, ProviderRejected, ProviderUnavailable

_MAX_RETRY_AFTER_S = 600.0


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a `retry-after` (or `retry-after-ms`) header; None when absent or unreadable."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return _bounded(float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return _bounded(float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _bounded((when - datetime.now(UTC)).total_seconds())


def _bounded(seconds: float) -> float | None:
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def from_status(
    provider: str, status: int, headers: Mapping[str, str] | None = None
) -> ProviderFault:
    """429 and 5xx may pass (provider_unavailable); any other status is a rejection.

    The message names only the provider and the status, never the provider's own text, which
    can echo request bodies or keys.
    """
    if status in (408, 409, 429) or status >= 500:
        return ProviderUnavailable(
            f"{provider} answered HTTP {status}", retry_after_s=retry_after(headers)
        )
    return ProviderRejected(f"{provider} rejected the request (HTTP {status})")


def unreachable(provider: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"could not connect to {provider}")


def cut(provider: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"the {provider} stream broke off")
