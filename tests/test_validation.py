"""Output validation: JSON extraction, JSON Schema and regex checks with a time bound, and
the result in task_done, the task row and GET /v1/tasks/{id}."""

from __future__ import annotations

import uuid

import aiohttp
import asyncpg

from engine.prompts.validation import extract_json, validate_text
from tests.conftest import Server
from tests.library_helpers import SIM, api_for, db, prompt_body

__all__ = ["db"]  # fixture

SCHEMA = {
    "type": "json_schema",
    "schema": {
        "type": "object",
        "required": ["answer"],
        "properties": {"answer": {"type": "string"}},
    },
}


def test_json_is_taken_from_the_whole_text_or_the_first_json_fence() -> None:
    assert extract_json(' {"answer": "x"} ') == (True, {"answer": "x"})
    fenced = 'Sure:\n```json\n{"answer": "y"}\n```\nand\n```json\n{"answer": 2}\n```'
    assert extract_json(fenced) == (True, {"answer": "y"})
    assert extract_json("no json here")[0] is False
    assert validate_text(fenced, [SCHEMA]).status == "passed"
    wrong = validate_text('```json\n{"answer": 2}\n```', [SCHEMA])
    assert wrong.status == "failed" and wrong.errors[0]["path"] == "answer"
    assert "is not of type 'string'" in wrong.errors[0]["message"]
    assert (
        validate_text("plain words", [SCHEMA])
        .errors[0]["message"]
        .startswith("the output holds no JSON")
    )
    assert validate_text("anything", []).status == "skipped"
    local = {
        "type": "json_schema",
        "schema": {
            "$defs": {"s": {"type": "string"}},
            "properties": {"answer": {"$ref": "#/$defs/s"}},
        },
    }
    assert validate_text('{"answer": 1}', [local]).status == "failed"


def test_regexes_match_and_hostile_ones_are_cut_off() -> None:
    assert validate_text("Answer: 42", [{"type": "regex", "pattern": r"\d+$"}]).status == "passed"
    miss = validate_text("Answer: none", [{"type": "regex", "pattern": r"\d+$"}])
    assert miss.status == "failed" and miss.errors[0]["message"] == "the output does not match"
    hostile = validate_text("a" * 5000 + "!", [{"type": "regex", "pattern": r"(a|a)*$"}])
    assert hostile.status == "failed"
    assert "took longer than" in hostile.errors[0]["message"]


async def test_validation_result_is_recorded_at_finalize(
    server: Server, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    user = await api_for(http, server)
    words = {"type": "regex", "pattern": r"^\w+ \w+"}
    checked = await user.call(
        "POST", "/v1/prompts", prompt_body(validations=[SCHEMA, words]), expect=201
    )
    assert checked["validations"] == [SCHEMA, words]
    done = await user.run({"prompt_id": checked["id"], "version": 1, "variables": {"topic": "t"}})
    # The simulator answers words, not JSON: the schema fails, the regex passes.
    assert done["status"] == "completed"
    assert done["validation"]["status"] == "failed"
    assert [e["type"] for e in done["validation"]["errors"]] == ["json_schema"]
    row = await db.fetchrow(
        "SELECT validation_status, validation_errors FROM ai_tasks WHERE task_id = $1",
        uuid.UUID(done["task_id"]),
    )
    assert row["validation_status"] == "failed"
    view = await user.call("GET", f"/v1/tasks/{done['task_id']}", expect=200)
    assert view["validation"] == done["validation"]

    passing = await user.call("POST", "/v1/prompts", prompt_body(validations=[words]), expect=201)
    done = await user.run(
        {"prompt_id": passing["id"], "version": 1, "variables": {"topic": "t"}, "settings": SIM}
    )
    assert done["validation"] == {"status": "passed", "errors": []}
    # A cancelled or failed task's partial text is not validated.
    client = await server.client(user.key)
    ack = await client.call(
        "execute",
        {
            "prompt_id": checked["id"],
            "version": 1,
            "variables": {"topic": "t"},
            "settings": {"max_tokens": 1000, "tokens_per_second": 20},
        },
    )
    await client.call("cancel", {"task_id": ack["task_id"]})
    cancelled = await client.wait_done(ack["task_id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["validation"]["status"] == "skipped"
