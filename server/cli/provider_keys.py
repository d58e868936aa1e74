"""`promptrelay provider-keys ...`: users' own provider keys from the command line.

The key is read from standard input, never from the command line (which other users of
the machine can see in the process list).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

from db import users
from db.migrate import apply_migrations
from db.pool import connect
from engine.accounts.byok import ProviderKeys
from engine.accounts.secrets import KeyRing, new_secret
from engine.errors import PromptrelayError
from engine.providers.registry import ProviderRegistry
from engine.settings import Settings

Infrastructure = Callable[..., contextlib.AbstractContextManager[Settings]]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("provider-keys", help="manage users' own provider keys (byok)")
    cmds = parser.add_subparsers(dest="provider_keys_command", required=True)
    put = cmds.add_parser("set", help="store a user's key for a provider (key on stdin)")
    put.add_argument("--user", required=True, help="the user's email")
    put.add_argument("--provider", required=True)
    listing = cmds.add_parser("list", help="a user's stored keys (last four characters only)")
    listing.add_argument("--user", required=True)
    delete = cmds.add_parser("delete", help="remove a user's key for a provider")
    delete.add_argument("--user", required=True)
    delete.add_argument("--provider", required=True)
    cmds.add_parser("rotate", help="re-encrypt every stored key under the newest server key")
    cmds.add_parser("new-secret", help="print a fresh key for PROVIDER_KEYS_SECRET")


def run(settings: Settings, args: argparse.Namespace, infrastructure: Infrastructure) -> int:
    command = args.provider_keys_command
    if command == "new-secret":
        print(new_secret())
        return 0
    key = sys.stdin.readline().strip() if command == "set" else ""
    try:
        ring = KeyRing.from_setting(settings.provider_keys_secret)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with infrastructure(settings, need_redis=False) as live:
        try:
            lines = asyncio.run(_run(live, ring, args, key))
        except PromptrelayError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
    for line in lines:
        print(line)
    return 0


async def _run(
    settings: Settings, ring: KeyRing | None, args: argparse.Namespace, key: str
) -> list[str]:
    registry = ProviderRegistry.from_settings(settings)
    names = registry.keyed_names()
    await registry.close()
    conn = await connect(settings.database_url or "")
    try:
        await apply_migrations(conn)
        store = ProviderKeys(conn, ring, names)
        command = args.provider_keys_command
        if command == "rotate":
            rotated, unreadable = await store.rotate_all(conn)
            return [f"re-encrypted {rotated} key(s); {unreadable} could not be decrypted"]
        user = await users.ensure_user(conn, args.user)
        if command == "set":
            stored = await store.store(user.id, args.provider, key)
            return [f"stored {stored['provider']} key ...{stored['last4']} for {args.user}"]
        if command == "delete":
            await store.delete(user.id, args.provider)
            return [f"deleted {args.provider} key of {args.user}"]
        return [
            f"{k['provider']}  ...{k['last4']}  {k['updated_at']}"
            for k in await store.list(user.id)
        ]
    finally:
        await conn.close()
