"""sql/005_tenancy.sql: on a Supabase-like database (an `auth.uid()` function) the RLS
policies show a client only its own rows and the variables of its orgs and projects; on a
plain Postgres the migration changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from db.migrate import apply_migrations
from db.pool import connect
from tests.conftest import Infra

AUTH_SCHEMA = """
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
CREATE ROLE {role} NOLOGIN;
GRANT USAGE ON SCHEMA auth TO {role};
"""


@pytest_asyncio.fixture
async def supabase_like(infra: Infra) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    name, role = f"rls_{uuid.uuid4().hex[:8]}", f"authenticated_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(infra.admin_url)
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await connect(infra.database_url(name))
    try:
        await conn.execute(AUTH_SCHEMA.format(role=role))
        await apply_migrations(conn)
        await conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
        )
        yield conn, role
    finally:
        await conn.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


async def seed(conn: asyncpg.Connection) -> dict[str, uuid.UUID]:
    ids = {k: uuid.uuid4() for k in ("a", "b", "org", "project", "task_a", "task_b")}
    for user in ("a", "b"):
        await conn.execute(
            "INSERT INTO users (id, email) VALUES ($1, $2)", ids[user], f"{user}@rls"
        )
        await conn.execute(
            "INSERT INTO ai_tasks (task_id, user_id, provider, model, request)"
            " VALUES ($1, $2, 'simulated', 'x', '{}')",
            ids[f"task_{user}"],
            ids[user],
        )
        await conn.execute(
            "INSERT INTO user_variables (user_id, name, value) VALUES ($1, 'mine', $2)",
            ids[user],
            user,
        )
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'o')", ids["org"])
    await conn.execute(
        "INSERT INTO organization_members VALUES ($1, $2, 'member')", ids["org"], ids["a"]
    )
    await conn.execute(
        "INSERT INTO org_variables (org_id, name, value) VALUES ($1, 'v', 'o')", ids["org"]
    )
    return ids


async def as_user(conn: asyncpg.Connection, role: str, user: uuid.UUID, sql: str) -> list[str]:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {role}")
        await conn.execute("SELECT set_config('request.jwt.claim.sub', $1, true)", str(user))
        return [str(r[0]) for r in await conn.fetch(sql)]


async def test_rls_shows_only_own_rows_and_member_variables(
    supabase_like: tuple[asyncpg.Connection, str],
) -> None:
    conn, role = supabase_like
    ids = await seed(conn)
    tasks = "SELECT task_id FROM ai_tasks"
    assert await as_user(conn, role, ids["a"], tasks) == [str(ids["task_a"])]
    assert await as_user(conn, role, ids["b"], tasks) == [str(ids["task_b"])]
    variables = "SELECT value FROM user_variables"
    assert await as_user(conn, role, ids["b"], variables) == ["b"]
    org_vars = "SELECT value FROM org_variables"
    assert await as_user(conn, role, ids["a"], org_vars) == ["o"]  # a member
    assert await as_user(conn, role, ids["b"], org_vars) == []  # not a member
    # a member who is not an admin cannot change the org's variables
    changed = await as_user(
        conn, role, ids["a"], "UPDATE org_variables SET value = 'x' RETURNING value"
    )
    assert changed == []
    # the owner role (the server's) is not restricted
    assert await conn.fetchval("SELECT count(*) FROM ai_tasks") == 2


async def test_plain_postgres_has_no_policies(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        enabled = await conn.fetchval(
            "SELECT count(*) FROM pg_class WHERE relrowsecurity AND relnamespace ="
            " 'public'::regnamespace"
        )
        applied = await conn.fetchval(
            "SELECT count(*) FROM schema_migrations WHERE name = '005_tenancy.sql'"
        )
    finally:
        await conn.close()
    assert enabled == 0 and applied == 1


async def test_rls_team_prompts_public_templates_and_agents(
    supabase_like: tuple[asyncpg.Connection, str],
) -> None:
    """sql/015_library_rls.sql: an org's prompt and agent are read by its members only, a
    public template by everyone."""
    conn, role = supabase_like
    ids = await seed(conn)
    team_prompt, template_id, agent_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO prompts (id, user_id, name, org_id) VALUES ($1, $2, 'team', $3)",
        team_prompt,
        ids["b"],
        ids["org"],
    )
    await conn.execute(
        "INSERT INTO prompt_versions (prompt_id, version, messages) VALUES ($1, 1, '[]')",
        team_prompt,
    )
    await conn.execute(
        "INSERT INTO prompt_templates (prompt_id, version) VALUES ($1, 1)", team_prompt
    )
    await conn.execute(
        "INSERT INTO agent_templates (id, user_id, org_id, name, system_prompt)"
        " VALUES ($1, $2, $3, 't', 's')",
        template_id,
        ids["b"],
        ids["org"],
    )
    await conn.execute(
        "INSERT INTO agents (id, template_id, user_id, org_id, name) VALUES ($1, $2, $3, $4, 'a')",
        agent_id,
        template_id,
        ids["b"],
        ids["org"],
    )
    outsider = uuid.uuid4()
    await conn.execute("INSERT INTO users (id, email) VALUES ($1, 'c@rls')", outsider)
    # a is a member of the org, c is not (b, the author, is not asked here).
    for sql, expected in (
        ("SELECT id FROM prompts WHERE org_id IS NOT NULL", [str(team_prompt)]),
        ("SELECT prompt_id FROM prompt_versions", [str(team_prompt)]),
        ("SELECT id FROM agents", [str(agent_id)]),
        ("SELECT id FROM agent_templates", [str(template_id)]),
    ):
        assert await as_user(conn, role, ids["a"], sql) == expected, sql
        assert await as_user(conn, role, outsider, sql) == [], sql
    # a member cannot change the org's prompt or agent
    update = "UPDATE agents SET name = 'x' RETURNING id"
    assert await as_user(conn, role, ids["a"], update) == []
    templates = "SELECT prompt_id FROM prompt_templates"
    assert await as_user(conn, role, outsider, templates) == [str(team_prompt)]
