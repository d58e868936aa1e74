"""Seed 001's generated-prompt cache: one stored render per (prompt version, values).

The key is a SHA-256 over the prompt's identity and version (a builtin's last change) and
the values its template uses, so a new version or a changed builtin never reuses an old
render; updating or deleting a prompt also drops its rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg

from db import prompts as prompt_rows
from engine.prompts import template


def cache_key(
    identity: str, version: str, messages: list[dict[str, str]], values: Mapping[str, Any]
) -> bytes:
    """The key of one render: identity, version and the values the template uses."""
    used = template.placeholders(m["content"] for m in messages)
    material = json.dumps(
        [identity, version, {name: values[name] for name in used if name in values}],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(material.encode()).digest()


def render_messages(
    messages: list[dict[str, str]], values: Mapping[str, Any]
) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": template.render(m["content"], values)} for m in messages]


async def rendered(
    conn: asyncpg.Pool | asyncpg.Connection,
    identity: str,
    version: str,
    prompt_id: UUID | None,
    version_no: int | None,
    messages: list[dict[str, str]],
    values: Mapping[str, Any],
) -> list[dict[str, str]]:
    """The render of `messages` with `values`, through the cache."""
    key = cache_key(identity, version, messages, values)
    return await prompt_rows.cache_render(
        conn, key, prompt_id, version_no, render_messages(messages, values)
    )
