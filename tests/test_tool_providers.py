"""Each adapter's tool calls through the official SDK path it uses (OpenAI, Anthropic) or its
own request (Gemini), against the local fakes: two parallel calls with arguments split over
several events, usage at the end, then the tool results sent back in the provider's format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.providers.anthropic import AnthropicProvider
from engine.providers.base import Provider, ProviderRequest
from engine.providers.google import GoogleProvider
from engine.providers.openai import OpenAIProvider
from engine.providers.simulated import SimulatedProvider
from engine.providers.toolcalls import ToolCallAssembler, assistant_message, tool_message
from tests.provider_env import SERVER_KEY, Fakes, fakes

TOOLS = [
    {
        "name": "weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"name": "time", "description": "", "parameters": {"type": "object"}},
]


@pytest.fixture
async def env() -> AsyncIterator[Fakes]:
    async with fakes() as f:
        yield f


def _provider(name: str, f: Fakes) -> Provider:
    if name == "openai":
        return OpenAIProvider(SERVER_KEY, f.openai.base_url, 10)
    if name == "anthropic":
        return AnthropicProvider(SERVER_KEY, f.anthropic.base_url, 10)
    return GoogleProvider(SERVER_KEY, f.google.base_url, 10)


async def _run(
    provider: Provider, request: ProviderRequest
) -> tuple[str, list[dict[str, Any]], Any]:
    calls, text = ToolCallAssembler(), []
    async with await provider.open(request) as stream:
        async for delta in stream:
            if isinstance(delta, str):
                text.append(delta)
            else:
                calls.add(delta)
    return "".join(text), calls.calls(), stream


@pytest.mark.parametrize("name", ["openai", "anthropic", "google"])
async def test_two_parallel_calls_then_the_results(env: Fakes, name: str) -> None:
    provider = _provider(name, env)
    try:
        messages: list[dict[str, Any]] = [{"role": "user", "content": "weather and time?"}]
        settings = {"tools": TOOLS, "tool_choice": "auto", "max_tokens": 50}
        request = ProviderRequest("m~tokens=2~tools=2", messages, settings)
        text, calls, stream = await _run(provider, request)
        assert text == "tok0 tok1 "
        assert [(c["name"], c["arguments"]) for c in calls] == [
            ("weather", {"city": "city0", "days": 1}),
            ("time", {"city": "city1", "days": 2}),
        ]
        assert stream.finish_reason == "tool_calls"
        assert stream.usage is not None and stream.usage.input_tokens > 0
        follow = [
            *messages,
            assistant_message(text, calls),
            *(tool_message(c, f"answer {i}") for i, c in enumerate(calls)),
        ]
        text2, calls2, stream2 = await _run(
            provider, ProviderRequest(request.model, follow, settings)
        )
        assert text2 == "tok0 tok1 " and calls2 == [] and stream2.finish_reason == "stop"
        sent = env.of(name).requests[-1]
        assert _results_sent(name, sent) == [
            (calls[0]["id"], "answer 0"),
            (calls[1]["id"], "answer 1"),
        ]
    finally:
        await provider.close()


def _results_sent(name: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    if name == "openai":
        assert body["messages"][1]["tool_calls"][1]["function"]["name"] == "time"
        return [(m["tool_call_id"], m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if name == "anthropic":
        assert body["tools"][0]["input_schema"] == TOOLS[0]["parameters"]
        blocks = body["messages"][-1]["content"]
        return [(b["tool_use_id"], b["content"]) for b in blocks]
    parts = body["contents"][-1]["parts"]
    assert body["contents"][1]["parts"][-1]["functionCall"]["name"] == "time"
    # Gemini matches answers by name and order (the fake's calls are call_fake_0, _1, ...)
    return [
        (f"call_fake_{i}", p["functionResponse"]["response"]["output"]) for i, p in enumerate(parts)
    ]


@pytest.mark.parametrize("name", ["openai", "anthropic"])
async def test_named_tool_choice_is_sent(env: Fakes, name: str) -> None:
    provider = _provider(name, env)
    try:
        settings = {"tools": TOOLS, "tool_choice": {"name": "time"}}
        request = ProviderRequest(
            "m~tokens=0~tools=1", [{"role": "user", "content": "t"}], settings
        )
        _, calls, _ = await _run(provider, request)
        assert [c["name"] for c in calls] == ["time"]
    finally:
        await provider.close()


async def test_openai_arguments_not_json(env: Fakes) -> None:
    provider = _provider("openai", env)
    try:
        request = ProviderRequest(
            "m~tokens=0~tools=1~bad_args=1", [{"role": "user", "content": "x"}], {"tools": TOOLS}
        )
        _, calls, _ = await _run(provider, request)
        assert calls[0]["arguments"] is None
        assert calls[0]["arguments_error"] == "the arguments are not valid JSON"
        assert calls[0]["arguments_text"] == '{"city": "city0", '
    finally:
        await provider.close()


async def test_simulated_tool_calls_are_deterministic() -> None:
    settings = {"tools": TOOLS, "simulate_tool_calls": 2}
    request = ProviderRequest("demo", [{"role": "user", "content": "hi"}], settings)
    first = await _run(SimulatedProvider(), request)
    second = await _run(SimulatedProvider(), request)
    assert first[1] == second[1] and len(first[1]) == 2
    assert [c["name"] for c in first[1]] == ["weather", "time"]
    assert first[2].finish_reason == "tool_calls"
    answered = [
        *request.messages,
        assistant_message("", first[1]),
        *(tool_message(c, "ok") for c in first[1]),
    ]
    text, calls, stream = await _run(
        SimulatedProvider(), ProviderRequest("demo", answered, settings)
    )
    assert text and calls == [] and stream.finish_reason == "stop"
