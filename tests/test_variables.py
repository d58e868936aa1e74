"""Variables: priority layers, computed values, type rules, literal insertion (property
tests), scoped variables over HTTP with membership, and the render cache."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.prompts.template import render
from engine.prompts.variables import resolve, type_error
from tests.conftest import Server
from tests.library_helpers import Api, api_for, db, prompt_body, sent_messages

__all__ = ["db"]  # fixture

NOW = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)


def test_priority_computed_request_project_org_user_default() -> None:
    definitions = [{"name": n, "default": f"default-{n}"} for n in "abcdef"]
    scoped = {
        "project": {"a": "project", "b": "project"},
        "org": {"a": "org", "b": "org", "c": "org"},
        "user": {"a": "user", "b": "user", "c": "user", "d": "user", "current_date": "user-set"},
    }
    out = resolve(definitions, {"a": "request", "current_date": "request-set"}, scoped, NOW)
    assert {n: out.values[n] for n in "abcde"} == {
        "a": "request",
        "b": "project",
        "c": "org",
        "d": "user",
        "e": "default-e",
    }
    assert out.sources["a"] == "request" and out.sources["e"] == "default"
    assert out.values["current_date"] == "2026-03-01" and out.sources["current_date"] == "computed"
    assert out.values["current_time"] == "23:30"


def test_computed_values_follow_user_timezone() -> None:
    out = resolve([], {}, {"user": {"user_timezone": "Asia/Tokyo"}}, NOW)
    assert out.values["current_date"] == "2026-03-02"
    assert out.values["current_datetime"] == "2026-03-02T08:30:00+09:00"
    unknown = resolve([], {}, {"user": {"user_timezone": "Mars/Olympus"}}, NOW)
    assert unknown.values["current_time"] == "23:30"  # unknown zones fall back to UTC


def test_type_rules() -> None:
    enum = {"name": "e", "type": "enum", "options": ["a", "b"]}
    assert type_error(enum, "a") is None and "one of: a, b" in str(type_error(enum, "c"))
    number = {"name": "n", "type": "number"}
    assert type_error(number, 3) is None and type_error(number, "2.5") is None
    assert type_error(number, True) and type_error(number, "nan") and type_error(number, "x")
    boolean = {"name": "b", "type": "boolean"}
    assert type_error(boolean, False) is None and type_error(boolean, "true") is None
    assert type_error(boolean, 1)


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
# Values that often hold placeholders themselves, with inner spaces or not.
values_text = st.one_of(
    st.text(),
    st.builds(
        lambda n, t, sp: "{{" + sp + n + sp + "}}" + t,
        names,
        st.text(),
        st.sampled_from(["", " ", "  "]),
    ),
)


@settings(deadline=None)  # a busy machine must not fail a property
@given(values_text, values_text, names.filter(lambda n: n not in ("a", "b")))
def test_values_are_inserted_literally(a: str, b: str, other: str) -> None:
    """Whatever a value holds (placeholders, braces, backslashes, regex group references)
    comes out exactly as given, and is never expanded again."""
    values = {"a": a, "b": b, other: "EXPANDED"}
    assert render("{{a}}|{{ b }}", values) == f"{a}|{b}"


@settings(deadline=None)  # a busy machine must not fail a property
@given(st.text().filter(lambda t: "{{" not in t))
def test_text_without_placeholders_is_unchanged(text: str) -> None:
    assert render(text, {"a": "V", "topic": "V"}) == text


@settings(deadline=None)  # a busy machine must not fail a property
@given(st.dictionaries(names, st.text(), max_size=5), st.text())
def test_rendering_is_one_pass(values: dict[str, str], tail: str) -> None:
    template = " ".join("{{" + name + "}}" for name in values) + tail.replace("{", "")
    expected = " ".join(values.values()) + tail.replace("{", "")
    assert render(template, values) == expected


async def _member(owner: Api, path: str, member: Api, role: str) -> None:
    """Invite `member`, who accepts."""
    await owner.call("POST", path, {"user_id": str(member.user_id), "role": role}, expect=202)
    target = path.split("/")[3]
    open_ = await member.call("GET", "/v1/me/invitations", expect=200)
    [invitation] = [i for i in open_["items"] if i["target_id"] == target]
    await member.call("POST", f"/v1/invitations/{invitation['id']}/accept", expect=200)


async def test_scoped_variables_reach_an_execute_only_through_membership(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    admin, member, outsider = [await api_for(http, server) for _ in range(3)]
    org = (await admin.call("POST", "/v1/orgs", {"name": "Acme"}, expect=201))["id"]
    project = (await admin.call("POST", f"/v1/orgs/{org}/projects", {"name": "Docs"}, expect=201))[
        "id"
    ]
    await _member(admin, f"/v1/orgs/{org}/members", member, "member")
    await _member(admin, f"/v1/projects/{project}/members", member, "member")
    await admin.call(
        "PUT", f"/v1/orgs/{org}/variables/persona", {"value": "an org voice"}, expect=200
    )
    await admin.call(
        "PUT", f"/v1/projects/{project}/variables/topic", {"value": "rivers"}, expect=200
    )
    await member.call("PUT", "/v1/me/variables/persona", {"value": "my own voice"}, expect=200)
    await member.call("PUT", "/v1/me/variables/language", {"value": "German"}, expect=200)
    await member.call("PUT", "/v1/me/variables/private_note", {"value": "not for runs"}, expect=200)
    # Members read, only admins write; outsiders see nothing.
    listed = await member.call("GET", f"/v1/orgs/{org}/variables", expect=200)
    assert [(v["name"], v["value"]) for v in listed["items"]] == [("persona", "an org voice")]
    denied = await member.call("PUT", f"/v1/orgs/{org}/variables/x", {"value": "1"}, expect=403)
    assert denied["error"]["code"] == "forbidden"
    await member.call("DELETE", f"/v1/projects/{project}/variables/topic", expect=403)
    await outsider.call("GET", f"/v1/orgs/{org}/variables", expect=404)
    await outsider.call("PUT", f"/v1/projects/{project}/variables/x", {"value": "1"}, expect=404)
    await member.call(
        "POST",
        f"/v1/orgs/{org}/members",
        {"user_id": str(outsider.user_id), "role": "admin"},
        expect=403,
    )
    prompt = await member.call("POST", "/v1/prompts", prompt_body(), expect=201)
    run = {"prompt_id": prompt["id"], "version": 1, "broker_values": {"ticket": 7}}

    plain = await member.run({**run, "variables": {"topic": "lakes"}})
    assert await sent_messages(db, plain["task_id"]) == [
        "You are my own voice.",
        "Explain lakes in German.",
    ]
    scoped = await member.run({**run, "scope": {"project_id": project}})
    assert await sent_messages(db, scoped["task_id"]) == [
        "You are an org voice.",
        "Explain rivers in German.",
    ]
    overridden = await member.run(
        {
            **run,
            "scope": {"org_id": org, "project_id": project},
            "variables": {"topic": "seas", "language": "English"},
        }
    )
    assert await sent_messages(db, overridden["task_id"]) == [
        "You are an org voice.",
        "Explain seas in English.",
    ]

    # The org's admin is not a project member but administers its projects.
    admin_prompt = await admin.call("POST", "/v1/prompts", prompt_body(), expect=201)
    by_admin = await admin.run(
        {"prompt_id": admin_prompt["id"], "version": 1, "scope": {"project_id": project}}
    )
    assert await sent_messages(db, by_admin["task_id"]) == [
        "You are an org voice.",
        "Explain rivers in English.",
    ]

    run_view = await member.call("GET", f"/v1/runs/{scoped['run_id']}", expect=200)
    assert run_view["variable_values"] == {
        "persona": "an org voice",
        "topic": "rivers",
        "language": "German",
    }
    assert run_view["broker_values"] == {"ticket": 7}
    events = await member.call("GET", f"/v1/tasks/{scoped['task_id']}/events", expect=200)
    kinds = [e["kind"] for e in events["items"]]
    assert kinds[:2] == ["queued", "prompt_resolved"] and kinds[-1] == "finalized"
    assert "first_token" in kinds and "provider_call" in kinds
    assert events["items"][1]["data"]["variable_sources"] == {
        "persona": "org",
        "language": "user",
        "topic": "project",
    }
    assert events["items"][1]["data"]["version"] == 1

    outsider_prompt = await outsider.call("POST", "/v1/prompts", prompt_body(), expect=201)
    refused = await outsider.execute(
        {
            "prompt_id": outsider_prompt["id"],
            "version": 1,
            "scope": {"org_id": org},
            "variables": {"topic": "t"},
        }
    )
    assert refused["error"]["code"] == "not_found"
    other_org = (await admin.call("POST", "/v1/orgs", {"name": "Other"}, expect=201))["id"]
    await _member(admin, f"/v1/orgs/{other_org}/members", member, "member")
    mismatch = await member.execute({**run, "scope": {"org_id": other_org, "project_id": project}})
    assert mismatch["error"]["code"] == "invalid_request"

    await member.call("DELETE", "/v1/me/variables/language", expect=204)
    await member.call("DELETE", "/v1/me/variables/language", expect=404)
    mine = await member.call("GET", "/v1/me/variables", expect=200)
    assert [v["name"] for v in mine["items"]] == ["persona", "private_note"]


async def test_user_variables_set_list_page_delete(
    server: Server, http: aiohttp.ClientSession
) -> None:
    user = await api_for(http, server)
    for name, value in (("b_var", "two"), ("a_var", 1), ("C_var", True), ("a_var", "one")):
        await user.call("PUT", f"/v1/me/variables/{name}", {"value": value}, expect=200)
    first = await user.call("GET", "/v1/me/variables?limit=2", expect=200)
    assert [(v["name"], v["value"]) for v in first["items"]] == [
        ("C_var", "true"),
        ("a_var", "one"),
    ]
    rest = await user.call(
        "GET", f"/v1/me/variables?limit=2&cursor={first['next_cursor']}", expect=200
    )
    assert [v["name"] for v in rest["items"]] == ["b_var"] and rest["next_cursor"] is None
    other = await api_for(http, server)
    assert (await other.call("GET", "/v1/me/variables", expect=200))["items"] == []
    await other.call("DELETE", "/v1/me/variables/a_var", expect=404)
    for bad in ("1abc", "a%20b", "-x"):
        await user.call("PUT", f"/v1/me/variables/{bad}", {"value": "v"}, expect=400)
    await user.call("PUT", "/v1/me/variables/ok", {"value": {"no": "objects"}}, expect=400)
    await user.call("PUT", "/v1/me/variables/ok", {"value": "a\x00b"}, expect=400)


async def test_missing_and_mistyped_variables_before_any_row(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    user = await api_for(http, server)
    body = prompt_body(
        messages=[{"role": "user", "content": "{{topic}} {{extra}} {{ n }}"}],
        variables=[
            {"name": "topic", "type": "string", "required": True},
            {"name": "flag", "type": "boolean", "required": True},
            {"name": "n", "type": "number"},
            {"name": "language", "type": "enum", "options": ["English", "German"]},
        ],
    )
    prompt = (await user.call("POST", "/v1/prompts", body, expect=201))["id"]
    missing = await user.execute({"prompt_id": prompt, "version": 1})
    assert missing["error"]["code"] == "missing_variables"
    assert missing["error"]["details"]["missing"] == ["topic", "extra", "n", "flag"]
    mistyped = await user.execute(
        {
            "prompt_id": prompt,
            "version": 1,
            "variables": {
                "topic": "t",
                "extra": "e",
                "n": "three",
                "flag": True,
                "language": "French",
            },
        }
    )
    assert mistyped["error"]["code"] == "invalid_request"
    fields = {e["field"]: e["message"] for e in mistyped["error"]["details"]["errors"]}
    assert set(fields) == {"variables.n", "variables.language"}
    assert "must be a number" in fields["variables.n"]
    assert "one of: English, German" in fields["variables.language"]
    assert await db.fetchval("SELECT count(*) FROM ai_tasks") == 0
    assert await db.fetchval("SELECT count(*) FROM ai_runs") == 0


async def test_render_cache_reuses_one_render_per_version_and_values(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    user = await api_for(http, server)
    prompt = (await user.call("POST", "/v1/prompts", prompt_body(), expect=201))["id"]
    run: dict[str, Any] = {"prompt_id": prompt, "version": 1, "variables": {"topic": "a"}}
    for _ in range(3):
        await user.run(run)
    await user.run({**run, "variables": {"topic": "b"}})
    rows = await db.fetch(
        "SELECT version, usage_count FROM generated_prompts"
        " WHERE prompt_id = $1 ORDER BY usage_count",
        uuid.UUID(prompt),
    )
    assert [(r["version"], r["usage_count"]) for r in rows] == [(1, 1), (1, 3)]
    await user.call("PATCH", f"/v1/prompts/{prompt}", {"change_log": "new"}, expect=200)
    assert await db.fetchval("SELECT count(*) FROM generated_prompts") == 0
    done = await user.run({**run, "version": 2})
    assert await sent_messages(db, done["task_id"]) == [
        "You are a teacher.",
        "Explain a in English.",
    ]
    assert await db.fetchval("SELECT version FROM generated_prompts") == 2
