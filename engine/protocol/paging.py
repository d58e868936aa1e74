"""Keyset paging of list routes: `limit` and an opaque `cursor`, `{items, next_cursor}`."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from engine.errors import InvalidRequest

T = TypeVar("T")


def encode(position: str) -> str:
    """The cursor of a page that continues after `position`."""
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode(cursor: str | None) -> str | None:
    """The position a cursor continues after; `invalid_request` when malformed."""
    if not cursor:
        return None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        position = raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_cursor() from None
    # only the cursors this server writes: canonical, and no NUL or control characters
    if not position.isprintable() or not position or encode(position) != cursor:
        raise bad_cursor()
    return position


def bad_cursor() -> InvalidRequest:
    return InvalidRequest(
        "invalid cursor",
        details={"errors": [{"field": "cursor", "message": "not a cursor from this list"}]},
    )


def by_time_and_id(stamp: str, key: str) -> Callable[[Any], str]:
    """The position of a row in a list ordered by (`stamp`, `key`): "<iso time>|<id>"."""
    return lambda row: f"{row[stamp].isoformat()}|{row[key]}"


def after_time_and_id(cursor: str | None) -> tuple[datetime, UUID] | None:
    """The (time, id) a page of such a list continues after; `invalid_request` for a
    cursor this server did not write (a time without an offset included)."""
    position = decode(cursor)
    if position is None:
        return None
    stamp, _, row_id = position.partition("|")
    try:
        moment, key = datetime.fromisoformat(stamp), UUID(row_id)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time has an offset")
        return moment.astimezone(UTC), key  # OverflowError past year 1 or 9999 in UTC
    except (ValueError, OverflowError):
        raise bad_cursor() from None


def page(
    rows: Sequence[T], limit: int, view: Callable[[T], dict[str, Any]], position: Callable[[T], str]
) -> dict[str, Any]:
    """`{items, next_cursor}` from up to `limit + 1` rows (one more tells there is more)."""
    items = [view(r) for r in rows[:limit]]
    more = len(rows) > limit
    return {"items": items, "next_cursor": encode(position(rows[limit - 1])) if more else None}


def after_id(cursor: str | None) -> UUID | None:
    """The id a page of a list ordered by id alone continues after; `invalid_request` for a
    cursor this server did not write."""
    position = decode(cursor)
    if position is None:
        return None
    try:
        return UUID(position)
    except ValueError:
        raise bad_cursor() from None
