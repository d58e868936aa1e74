"""Stored prompts and builtins: resolution, versions, {{variable}} rendering."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from engine.prompts.template import missing, render
from tests.conftest import Server


@pytest_asyncio.fixture
async def conn(server: Server) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(server.settings.database_url)
    yield connection
    await connection.close()


async def make_prompt(conn: asyncpg.Connection, email: str, published: int | None) -> uuid.UUID:
    user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
    prompt_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO prompts (id, user_id, name, status, latest_version, published_version)"
        " VALUES ($1, $2, 'Explainer', 'published', 2, $3)",
        prompt_id,
        user_id,
        published,
    )
    for version, persona in ((1, "a teacher"), (2, "a pirate")):
        await conn.execute(
            "INSERT INTO prompt_versions (prompt_id, version, messages, model, settings, variables)"
            " VALUES ($1, $2, $3::jsonb, 'simulated/explainer', $4::jsonb, $5::jsonb)",
            prompt_id,
            version,
            json.dumps(
                [
                    {"role": "system", "content": f"You are {persona}."},
                    {"role": "user", "content": "Explain {{ topic }} in {{language}}."},
                ]
            ),
            json.dumps({"max_tokens": 4, "tokens_per_second": 0}),
            json.dumps(
                [
                    {"name": "topic", "type": "string", "required": True},
                    {
                        "name": "language",
                        "type": "enum",
                        "options": ["English", "German"],
                        "default": "English",
                    },
                ]
            ),
        )
    return prompt_id


async def sent_messages(conn: asyncpg.Connection, task_id: str) -> list[dict[str, str]]:
    request = await conn.fetchval(
        "SELECT request FROM ai_tasks WHERE task_id = $1", uuid.UUID(task_id)
    )
    return list(json.loads(request)["messages"])


async def test_stored_prompt_renders_published_version(
    server: Server, conn: asyncpg.Connection
) -> None:
    key = await server.new_key("owner@test")
    prompt_id = await make_prompt(conn, "owner@test", published=1)
    client = await server.client(key)
    ack = await client.call(
        "execute",
        {
            "prompt_id": str(prompt_id),
            "variables": {"topic": "{{language}} recursion"},
            "messages": [{"role": "user", "content": "Thanks"}],
        },
    )
    assert ack["ok"], ack
    done = await client.wait_done(ack["task_id"])
    assert done["model"] == "explainer" and len(done["text"].split()) == 4
    assert [m["content"] for m in await sent_messages(conn, ack["task_id"])] == [
        "You are a teacher.",
        "Explain {{language}} recursion in English.",
        "Thanks",
    ]
    pinned = await client.call(
        "execute",
        {
            "prompt_id": str(prompt_id),
            "version": 2,
            "variables": {"topic": "x", "language": "German"},
        },
    )
    await client.wait_done(pinned["task_id"])
    assert [m["content"] for m in await sent_messages(conn, pinned["task_id"])] == [
        "You are a pirate.",
        "Explain x in German.",
    ]


async def test_missing_variables_are_reported_before_any_row(
    server: Server, conn: asyncpg.Connection
) -> None:
    key = await server.new_key("owner@test")
    prompt_id = await make_prompt(conn, "owner@test", published=1)
    client = await server.client(key)
    ack = await client.call("execute", {"prompt_id": str(prompt_id)})
    assert ack["ok"] is False and ack["error"]["code"] == "missing_variables"
    assert ack["error"]["details"] == {"missing": ["topic"]}
    assert await conn.fetchval("SELECT count(*) FROM ai_tasks") == 0
    assert await conn.fetchval("SELECT count(*) FROM ai_runs") == 0


async def test_unpublished_or_foreign_prompt_is_not_found(
    server: Server, conn: asyncpg.Connection
) -> None:
    await server.new_key("owner@test")
    prompt_id = await make_prompt(conn, "owner@test", published=None)
    owner = await server.client(await server.new_key("owner@test"))
    stranger = await server.client(await server.new_key("stranger@test"))
    unpinned = await owner.call(
        "execute", {"prompt_id": str(prompt_id), "variables": {"topic": "t"}}
    )
    assert unpinned["error"]["code"] == "not_found"
    foreign = await stranger.call(
        "execute", {"prompt_id": str(prompt_id), "version": 1, "variables": {"topic": "t"}}
    )
    assert foreign["error"]["code"] == "not_found"


async def test_builtin_runs_by_name_with_defaults(server: Server, conn: asyncpg.Connection) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call(
        "execute",
        {
            "builtin": "summarize",
            "model": "simulated/s",
            "variables": {"text": "A long story."},
            "settings": {"max_tokens": 3, "tokens_per_second": 0},
        },
    )
    assert ack["ok"], ack
    await client.wait_done(ack["task_id"])
    sent = await sent_messages(conn, ack["task_id"])
    assert sent[1]["content"] == "Summarize the following text in 3 sentences:\n\nA long story."
    missing_lang = await client.call(
        "execute", {"builtin": "translate", "variables": {"text": "hi"}}
    )
    assert missing_lang["error"]["details"]["missing"] == ["language"]


def test_render_is_literal_and_single_pass() -> None:
    values = {"a": "{{b}}", "b": "B", "n": 3, "t": True}
    assert render("{{a}}-{{ b }}-{{n}}-{{t}}-{{zz}}", values) == "{{b}}-B-3-true-{{zz}}"
    assert missing(["{{a}} {{ c }} {{c}} {{d}}"], values) == ["c", "d"]
