"""`settings.response_format` on each provider's wire (what the fake received), the answer
checked by the output validations, and the OpenAI-compatible endpoint taking it."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import Server
from tests.provider_env import Fakes

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "place", "schema": SCHEMA, "strict": True},
}
JSON_OBJECT = {"type": "json_object"}


async def execute(
    server: Server, model: str, fmt: dict[str, Any], content: str = "hi"
) -> dict[str, Any]:
    """The ack when refused, else the task_done."""
    client = await server.client(await server.new_key())
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "settings": {"response_format": fmt},
    }
    ack: dict[str, Any] = await client.call("execute", payload)
    if not ack["ok"]:
        return ack
    done: dict[str, Any] = await client.wait_done(ack["task_id"])
    return done


async def test_openai_json_schema_is_sent_and_the_answer_passes(srv: Server, fk: Fakes) -> None:
    done = await execute(srv, "openai/gpt-4o-mini:echo=1", JSON_SCHEMA, '{"city": "Paris"}')
    assert fk.openai.requests[-1]["response_format"] == JSON_SCHEMA
    assert done["status"] == "completed"
    assert done["validation"] == {"status": "passed", "errors": []}


async def test_an_answer_that_breaks_the_schema_is_flagged(srv: Server, fk: Fakes) -> None:
    done = await execute(srv, "openai/gpt-4o-mini:echo=1", JSON_SCHEMA, '{"town": "Paris"}')
    assert done["status"] == "completed" and done["validation"]["status"] == "failed"


async def test_a_non_json_answer_is_flagged(srv: Server, fk: Fakes) -> None:
    done = await execute(srv, "openai/gpt-4o-mini", JSON_OBJECT)
    assert fk.openai.requests[-1]["response_format"] == JSON_OBJECT
    assert done["status"] == "completed" and done["validation"]["status"] == "failed"
    assert "no JSON" in done["validation"]["errors"][0]["message"]


async def test_google_gets_mime_type_and_json_schema(srv: Server, fk: Fakes) -> None:
    done = await execute(srv, "google/gemini-2.0-flash", JSON_SCHEMA)
    config = fk.google.requests[-1]["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
    assert done["validation"]["status"] == "failed"  # the fake answers words
    await execute(srv, "google/gemini-2.0-flash", JSON_OBJECT)
    assert fk.google.requests[-1]["generationConfig"] == {"responseMimeType": "application/json"}


async def test_anthropic_json_schema_is_structured_output(srv: Server, fk: Fakes) -> None:
    done = await execute(srv, "anthropic/claude-haiku-4-5", JSON_SCHEMA)
    sent = fk.anthropic.requests[-1]
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert done["validation"]["status"] == "failed"


async def test_anthropic_refuses_json_object(srv: Server, fk: Fakes) -> None:
    ack = await execute(srv, "anthropic/claude-haiku-4-5", JSON_OBJECT)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request"
    assert "anthropic" in ack["error"]["message"] and "json_object" in ack["error"]["message"]
    assert ack["error"]["details"]["errors"][0]["field"] == "settings.response_format"
    assert fk.anthropic.requests == []


async def test_text_sends_nothing_but_to_openai(srv: Server, fk: Fakes) -> None:
    for model in ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "google/gemini-2.0-flash"):
        done = await execute(srv, model, {"type": "text"})
        assert done["status"] == "completed" and done["validation"]["status"] == "skipped"
    assert fk.openai.requests[-1]["response_format"] == {"type": "text"}
    assert "output_config" not in fk.anthropic.requests[-1]
    assert "generationConfig" not in fk.google.requests[-1]


@pytest.mark.parametrize(
    "schema",
    [{"type": 5}, {"$ref": "https://example.com/s.json"}, {"$ref": "#"}],
    ids=["invalid", "remote-ref", "ref-loop"],
)
async def test_a_bad_schema_is_refused(srv: Server, fk: Fakes, schema: dict[str, Any]) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    ack = await execute(srv, "openai/gpt-4o-mini", bad)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request"
    assert fk.openai.requests == []


async def test_openai_compatible_endpoint_takes_json_schema(srv: Server, fk: Fakes) -> None:
    client = openai.AsyncOpenAI(
        base_url=srv.url + "/v1", api_key=await srv.new_key(), max_retries=0
    )
    try:
        answer = await client.chat.completions.create(
            model="openai/gpt-4o-mini:echo=1",
            messages=[{"role": "user", "content": '{"city": "Oslo"}'}],
            response_format=JSON_SCHEMA,  # type: ignore[arg-type]
        )
    finally:
        await client.close()
    assert json.loads(answer.choices[0].message.content or "") == {"city": "Oslo"}
    assert fk.openai.requests[-1]["response_format"] == JSON_SCHEMA
