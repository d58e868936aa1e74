"""Sampling settings on each provider's wire (what the fake received), and a setting a
provider has no place for refused with `invalid_request` naming provider and setting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Server
from tests.provider_env import Fakes

ALL = {
    "temperature": 0.3,
    "top_p": 0.9,
    "stop": ["END"],
    "seed": 7,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
}
MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "google": "google/gemini-2.0-flash",
}


async def execute(server: Server, model: str, settings: dict[str, Any]) -> dict[str, Any]:
    client = await server.client(await server.new_key())
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    ack: dict[str, Any] = await client.call("execute", {**payload, "settings": settings})
    if ack["ok"]:
        done = await client.wait_done(ack["task_id"])
        assert done["status"] == "completed", done
    return ack


async def test_openai_gets_every_sampling_setting(srv: Server, fk: Fakes) -> None:
    await execute(srv, MODELS["openai"], ALL)
    sent = fk.openai.requests[-1]
    assert {k: sent[k] for k in ALL} == ALL


async def test_google_gets_every_sampling_setting(srv: Server, fk: Fakes) -> None:
    await execute(srv, MODELS["google"], ALL)
    assert fk.google.requests[-1]["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "stopSequences": ["END"],
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
    }


async def test_anthropic_gets_stop_as_stop_sequences(srv: Server, fk: Fakes) -> None:
    await execute(srv, MODELS["anthropic"], {"stop": ["END"], "max_tokens": 50})
    sent = fk.anthropic.requests[-1]
    assert (sent["stop_sequences"], sent["max_tokens"]) == (["END"], 50)
    assert not {"temperature", "top_p", "seed"} & set(sent)


@pytest.mark.parametrize(
    "key", ["temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"]
)
async def test_anthropic_refuses_what_it_has_no_place_for(srv: Server, fk: Fakes, key: str) -> None:
    ack = await execute(srv, MODELS["anthropic"], {"stop": ["END"], key: ALL[key]})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request"
    assert "anthropic" in ack["error"]["message"] and key in ack["error"]["message"]
    assert ack["error"]["details"]["errors"][0]["field"] == f"settings.{key}"
    assert fk.anthropic.requests == []


async def test_a_fallback_that_cannot_take_a_setting_is_refused(srv: Server, fk: Fakes) -> None:
    settings = {"seed": 7, "fallbacks": [MODELS["anthropic"]]}
    ack = await execute(srv, MODELS["openai"], settings)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request"
    assert fk.openai.requests == []
