"""A gateway wired to local fakes of all three providers, and helpers to read what it wrote."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import SecretStr

from engine.settings import Settings
from tests.conftest import Server, start_server, stop_server
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.google_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI

SERVER_KEY = "server-key-0000"


@dataclass
class Fakes:
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    google: FakeGemini

    def of(self, provider: str) -> Any:
        return getattr(self, provider)


@asynccontextmanager
async def fakes() -> AsyncIterator[Fakes]:
    async with FakeOpenAI() as o, FakeAnthropic() as a, FakeGemini() as g:
        yield Fakes(o, a, g)  # type: ignore[arg-type]


def provider_settings(settings: Settings, f: Fakes, **overrides: Any) -> Settings:
    return settings.model_copy(
        update={
            "openai_api_key": SecretStr(SERVER_KEY),
            "openai_base_url": f.openai.base_url,
            "anthropic_api_key": SecretStr(SERVER_KEY),
            "anthropic_base_url": f.anthropic.base_url,
            "gemini_api_key": SecretStr(SERVER_KEY),
            "google_genai_base_url": f.google.base_url,
            "provider_retries": 2,
            "provider_backoff_s": 0.01,
            "provider_backoff_max_s": 0.05,
            **overrides,
        }
    )


@asynccontextmanager
async def provider_server(settings: Settings, f: Fakes, **overrides: Any) -> AsyncIterator[Server]:
    srv = await start_server(provider_settings(settings, f, **overrides))
    try:
        yield srv
    finally:
        await stop_server(srv)


async def fetch(server: Server, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows
    finally:
        await conn.close()


async def task_row(server: Server, task_id: str) -> asyncpg.Record:
    rows = await fetch(server, "SELECT * FROM ai_tasks WHERE task_id = $1", uuid.UUID(task_id))
    return rows[0]


async def event_kinds(server: Server, task_id: str) -> list[str]:
    rows = await fetch(
        server, "SELECT kind FROM task_events WHERE task_id = $1 ORDER BY id", uuid.UUID(task_id)
    )
    return [r["kind"] for r in rows]


async def dump_every_table(server: Server) -> str:
    """Every row of every table in the database, as text."""
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(table_name) AS t FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        parts = []
        for table in tables:
            rows = await conn.fetch(f"SELECT x::text AS row FROM {table['t']} x")
            parts.extend(r["row"] for r in rows)
        return "\n".join(parts)
    finally:
        await conn.close()
