"""A model name is checked against its provider's rule before any request is built: no name
can steer the provider URL (another path or method of the provider's host) with the
operator's key. Gemini puts the model in the URL; OpenAI and Anthropic send it in the body."""

from __future__ import annotations

import pytest

from engine.providers.google import stream_url
from tests.conftest import Server
from tests.provider_env import Fakes

HOSTILE = [
    "google/../../../evil/path?x=",
    "google/../cachedContents?",
    "google/gemini:generateContent?alt=json#",
    "google/gemini-2.0-flash/../../files",
    "google/%2e%2e%2fevil",
    "google/gemini\x00flash",
    "openai/gpt-4o mini",
    "anthropic/claude\nHost: evil",
]


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("model", HOSTILE)
async def test_hostile_model_name_is_refused_before_any_request(
    srv: Server, fk: Fakes, model: str
) -> None:
    client = await srv.client(await srv.new_key())
    ack = await client.call("execute", {"messages": _messages(), "model": model})
    assert not ack["ok"] and ack["error"]["code"] == "invalid_request", ack
    assert "model" in str(ack["error"]), ack
    # As a fallback too: refused before anything runs.
    ack = await client.call(
        "execute",
        {
            "messages": _messages(),
            "model": "simulated/demo",
            "settings": {"fallbacks": [model]},
        },
    )
    assert not ack["ok"] and ack["error"]["code"] == "invalid_request", ack
    assert fk.google.paths == fk.openai.paths == fk.anthropic.paths == []


async def test_gemini_names_with_dots_and_dashes_still_work(srv: Server, fk: Fakes) -> None:
    client = await srv.client(await srv.new_key())
    ack = await client.call(
        "execute", {"messages": _messages(), "model": "google/gemini-2.5-flash-001~tokens=2"}
    )
    assert ack["ok"], ack
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "completed"
    assert fk.google.paths == [
        "/v1/models/gemini-2.5-flash-001~tokens%3D2:streamGenerateContent?alt=sse"
    ]


async def test_openai_names_with_slashes_and_colons_stay_in_the_body(
    srv: Server, fk: Fakes
) -> None:
    client = await srv.client(await srv.new_key())
    ack = await client.call(
        "execute", {"messages": _messages(), "model": "openai/org/ft:model:tokens=2"}
    )
    assert ack["ok"], ack
    assert (await client.wait_done(ack["task_id"]))["status"] == "completed"
    assert [p.rsplit("/", 1)[-1] for p in fk.openai.paths] == ["completions"]
    assert fk.openai.requests[-1]["model"] == "org/ft:model:tokens=2"


def test_stream_url_escapes_and_refuses_unsafe_segments() -> None:
    base = "https://generativelanguage.googleapis.com/v1/models/"
    url = stream_url(base, "gemini-2.0-flash")
    assert str(url) == base + "gemini-2.0-flash:streamGenerateContent?alt=sse"
    for bad in ("..", "a/b", "a:b", "a?b", "a#b", "a%2f"):
        with pytest.raises(ValueError):
            stream_url(base, bad)


@pytest.mark.parametrize("model", ["gpt-4o", "OpenAI/gpt-4o", "openai/", "openai/gpt 4o"])
async def test_a_name_without_provider_says_how_to_write_one(srv: Server, model: str) -> None:
    client = await srv.client(await srv.new_key())
    ack = await client.call("execute", {"model": model, "messages": _messages()})
    assert ack["error"]["code"] == "invalid_request", ack
    errors = ack["error"]["details"]["errors"]
    assert errors == [
        {"field": "model", "message": "model must be provider/model, e.g. openai/gpt-4o-mini"}
    ]
