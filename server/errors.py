"""The one mapping from exceptions to what a client receives: a Socket.IO error ack or an
HTTP error body. Our errors keep their code; our own database or Redis being away is
`service_unavailable` (503); anything else is logged and answered as a generic `internal`."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from db.pool import DatabaseBusy
from engine.errors import InternalError, PromptrelayError, ServiceUnavailable

log = logging.getLogger(__name__)

# Our own stores unreachable, restarting or saturated: the client may try again shortly.
_OUTAGES: tuple[type[BaseException], ...] = (
    DatabaseBusy,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    OSError,  # a refused connection, or a missing unix socket (FileNotFoundError)
)


def client_error(exc: BaseException, where: str) -> PromptrelayError:
    """Our error for any exception a handler raised; `where` names the handler in the log."""
    if isinstance(exc, PromptrelayError):
        return exc
    if isinstance(exc, _OUTAGES):
        log.warning("%s: a store is unavailable (%s)", where, type(exc).__name__)
        return ServiceUnavailable("the service is temporarily unavailable; try again")
    log.error("%s failed", where, exc_info=exc)
    return InternalError("internal error")


def error_ack(exc: PromptrelayError) -> dict[str, Any]:
    """`{ok: false, error}`: the ack of a refused Socket.IO event."""
    return {"ok": False, "error": exc.to_dict()}


def error_response(exc: PromptrelayError) -> web.Response:
    """`{error}` with the error's HTTP status (and `Retry-After` when it has one)."""
    headers = {}
    allowed = (exc.details or {}).get("allowed") if exc.http_status == 405 else None
    if isinstance(allowed, list):
        headers["Allow"] = ", ".join(allowed)
    retry_ms = (exc.details or {}).get("retry_after_ms")
    if isinstance(retry_ms, int | float):
        headers["Retry-After"] = str(max(1, int(retry_ms / 1000 + 0.999)))
    return web.json_response({"error": exc.to_dict()}, status=exc.http_status, headers=headers)
