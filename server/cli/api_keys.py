"""`promptrelay keys list|revoke` (a user's keys by email, never key material) and
`promptrelay users delete`."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import asyncpg

from db import api_keys as key_rows
from db.users import mark_deleted
from engine.settings import Settings
from server.cli.infra import with_database

T = TypeVar("T")


def add_key_commands(
    keys_sub: argparse._SubParsersAction[argparse.ArgumentParser],
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    listing = keys_sub.add_parser("list", help="list a user's keys (prefix and last use)")
    listing.add_argument("--user", required=True, help="the user's email")
    revoke = keys_sub.add_parser(
        "revoke",
        help="revoke a user's live keys by prefix; their sockets are closed by "
        "every node within AUTH_RECHECK_S",
    )
    revoke.add_argument("--user", required=True, help="the user's email")
    revoke.add_argument("--prefix", required=True, help="the key's prefix as `keys list` shows")
    users = sub.add_parser("users", help="manage users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    delete = users_sub.add_parser(
        "delete",
        help="mark a user deleted: their keys and tokens stop working and their "
        "open sockets are closed by every node within AUTH_RECHECK_S",
    )
    delete.add_argument("--user", required=True, help="the user's email")


def _with_db(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    return with_database(settings, work)


def run_key_command(settings: Settings, args: argparse.Namespace) -> int:
    """`keys list`, `keys revoke` or `users delete`; returns the exit status."""
    if args.command == "users":
        deleted = _with_db(settings, lambda conn: mark_deleted(conn, args.user))
        print(f"deleted {args.user}" if deleted else "no such live user")
        return 0 if deleted else 1
    if args.keys_command == "list":
        rows = _with_db(settings, lambda conn: key_rows.list_keys_of(conn, args.user))
        print(
            "prefix       name                 created                    last used"
            "                  revoked"
        )
        for r in rows:
            print(
                f"{r['prefix']:<12} {r['name'][:20]:<20} {_when(r['created_at'])} "
                f"{_when(r['last_used_at'])} {_when(r['revoked_at'])}"
            )
        return 0
    if len(args.prefix) < 4:
        print("the prefix must have at least 4 characters")
        return 2
    revoked = _with_db(
        settings, lambda conn: key_rows.revoke_by_prefix(conn, args.user, args.prefix)
    )
    for r in revoked:
        print(f"revoked {r['prefix']}...")
    if not revoked:
        print("no live key with that prefix for that user")
        return 1
    return 0


def _when(value: datetime | None) -> str:
    return f"{value.isoformat(timespec='seconds'):<26}" if value is not None else f"{'-':<26}"
