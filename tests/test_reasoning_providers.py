"""Reasoning from each provider end to end: a gateway wired to the local fakes, which stream
thinking the way each provider documents it (Anthropic thinking blocks with signatures and
redacted thinking, Gemini thought parts, OpenAI reasoning counts and an OpenAI-compatible
server's `reasoning_content`); the tool-use continuation Anthropic refuses without its
signed thinking; the settings a provider cannot take."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import openai
import pytest

from db import prices
from db.pool import connect
from engine.errors import ProviderFault
from engine.providers.anthropic import AnthropicProvider
from engine.providers.base import ProviderRequest
from engine.providers.pricing import catalog_models
from engine.providers.toolcalls import assistant_message, tool_message
from tests.conftest import Client, Server
from tests.provider_env import SERVER_KEY, Fakes, fetch, task_row

TOOLS = [{"name": "weather", "parameters": {"type": "object"}}]


def _body(model: str, reasoning: dict[str, Any], **extra: Any) -> dict[str, Any]:
    settings = {"reasoning": reasoning, **extra.pop("settings", {})}
    return {
        "messages": [{"role": "user", "content": "think it over"}],
        "model": model,
        "settings": settings,
        **extra,
    }


async def _run(srv: Server, body: dict[str, Any]) -> tuple[Client, dict[str, Any]]:
    client = await srv.client(await srv.new_key())
    ack = await client.call("execute", body)
    assert ack["ok"] is True, ack
    return client, await client.wait_done(ack["task_id"])


def _streamed(client: Client, task_id: str) -> str:
    pieces = sorted(client.reasoning[task_id], key=lambda r: r["seq"])
    return "".join(p["text"] for p in pieces)


def _per_token(provider: str, model: str) -> tuple[Decimal, Decimal]:
    found = next(m for m in catalog_models(provider) if m.model == model)
    assert found.input_per_mtok is not None and found.output_per_mtok is not None
    return found.input_per_mtok / 1_000_000, found.output_per_mtok / 1_000_000


async def test_anthropic_thinking_streams_as_reasoning(srv: Server, fk: Fakes) -> None:
    model = "anthropic/claude-sonnet-4-5:think=4:tokens=3"
    client, done = await _run(srv, _body(model, {"effort": "low"}))
    task_id = done["task_id"]
    assert done["status"] == "completed", done
    thought = "think0 think1 think2 think3 "
    assert _streamed(client, task_id) == done["reasoning"] == thought
    assert done["text"] == client.text(task_id) == "tok0 tok1 tok2 "
    # the request: thinking with the effort's budget, room to answer besides it
    sent = fk.anthropic.requests[-1]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["max_tokens"] == 1024 + 4096
    usage = done["usage"]
    assert usage["output_tokens"] == 7  # thinking and answer, as Anthropic bills them
    assert usage["reasoning_tokens"] == 7 - 4  # less the answer's estimate (15 characters)
    inp, out = _per_token("anthropic", "claude-sonnet-4-5")
    assert Decimal(done["cost_usd"]) == usage["input_tokens"] * inp + 7 * out
    row = await task_row(srv, task_id)
    assert (row["reasoning_text"], row["reasoning_tokens"]) == (thought, 3)
    logs = await fetch(srv, "SELECT * FROM ai_usage_logs WHERE task_id = $1", uuid.UUID(task_id))
    assert (logs[0]["output_tokens"], logs[0]["reasoning_tokens"]) == (7, 3)


async def test_anthropic_tool_continuation_sends_the_signed_thinking_back(
    srv: Server, fk: Fakes
) -> None:
    model = "anthropic/claude-sonnet-4-5:think=2:tokens=1:tools=1:redacted=1"
    client, done = await _run(srv, _body(model, {}, tools=TOOLS))
    assert done["finish_reason"] == "tool_calls" and done["reasoning"] == "think0 think1 "
    asked = fk.anthropic.requests[-1]
    call = done["tool_calls"][0]
    await client.call("subscribe", {"task_id": done["next_task_id"], "after_seq": 0})
    await client.call(
        "tool_result", {"task_id": done["task_id"], "call_id": call["id"], "output": "sunny"}
    )
    follow = await client.wait_done(done["next_task_id"])
    # the fake refuses a continuation without the blocks it issued: this one went through
    assert follow["status"] == "completed", follow
    assert follow["text"] == "tok0 " and follow["reasoning"] == "think0 think1 "
    sent = fk.anthropic.requests[-1]
    assert sent is not asked
    turn = sent["messages"][-2]
    assert [b["type"] for b in turn["content"]] == [
        "thinking",
        "redacted_thinking",
        "text",
        "tool_use",
    ]
    thinking = turn["content"][0]
    assert thinking["thinking"] == "think0 think1 "
    assert fk.anthropic.issued[thinking["signature"]] == thinking["thinking"]
    assert turn["content"][1]["data"].startswith("EmwKAhgBEgy3va3pzix")
    # the run keeps the blocks with the turn that asked for tools
    rows = await fetch(srv, "SELECT messages FROM ai_runs WHERE id = $1", uuid.UUID(done["run_id"]))
    kept = [m for m in json.loads(rows[0]["messages"]) if m.get("tool_calls")]
    assert kept[0]["thinking"] == turn["content"][:2]


async def test_anthropic_refuses_a_continuation_without_its_thinking(fk: Fakes) -> None:
    """The control for the test above: the fake does refuse what Anthropic refuses."""
    provider = AnthropicProvider(SERVER_KEY, fk.anthropic.base_url, 10)
    try:
        settings: dict[str, Any] = {"tools": TOOLS, "reasoning": {}}
        call = {"id": "toolu_x", "name": "weather", "arguments": {}}
        forged = [{"type": "thinking", "thinking": "made up", "signature": "sig0"}]
        for thinking in (None, forged):
            messages = [
                {"role": "user", "content": "weather?"},
                assistant_message("", [call], thinking),
                tool_message(call, "sunny"),
            ]
            request = ProviderRequest("claude-sonnet-4-5:think=1", messages, settings)
            with pytest.raises(ProviderFault):
                await provider.open(request)
    finally:
        await provider.close()


async def test_google_thoughts_stream_as_reasoning(srv: Server, fk: Fakes) -> None:
    client, done = await _run(srv, _body("google/gemini-2.5-flash", {"budget_tokens": 512}))
    task_id = done["task_id"]
    assert done["status"] == "completed", done
    assert _streamed(client, task_id) == done["reasoning"] == "think0 think1 think2 "
    # the fake's defaults: three thoughts, eight tokens (a plain name, so it has a price)
    assert done["text"] == client.text(task_id) == "".join(f"tok{i} " for i in range(8))
    config = fk.google.requests[-1]["generationConfig"]["thinkingConfig"]
    assert config == {"includeThoughts": True, "thinkingBudget": 512}
    usage = done["usage"]
    assert (usage["output_tokens"], usage["reasoning_tokens"]) == (11, 3)
    inp, out = _per_token("google", "gemini-2.5-flash")
    assert Decimal(done["cost_usd"]) == usage["input_tokens"] * inp + 11 * out


async def test_openai_counts_reasoning_it_does_not_stream(srv: Server, fk: Fakes) -> None:
    conn = await connect(srv.settings.database_url or "")
    try:  # an override price for the fake's model name: $3 in, $7 out per million
        price = prices.ModelPrice(Decimal("3"), Decimal("7"))
        await prices.set_price(conn, "openai", "o4-mini:think=5:tokens=2", price)
    finally:
        await conn.close()
    body = _body("openai/o4-mini:think=5:tokens=2", {"effort": "low"}, settings={"max_tokens": 50})
    client, done = await _run(srv, body)
    assert done["status"] == "completed", done  # the fake refuses max_tokens: it was mapped
    sent = fk.openai.requests[-1]
    assert sent["reasoning_effort"] == "low" and sent["max_completion_tokens"] == 50
    assert "max_tokens" not in sent
    assert done["reasoning"] is None and client.reasoning[done["task_id"]] == []
    usage = done["usage"]
    assert (usage["output_tokens"], usage["reasoning_tokens"]) == (7, 5)
    # reasoning priced as output: 2 answer tokens and 5 reasoning tokens at $7 per million
    expected = (usage["input_tokens"] * 3 + 7 * 7) / Decimal(1_000_000)
    assert Decimal(done["cost_usd"]) == expected
    assert (await task_row(srv, done["task_id"]))["reasoning_tokens"] == 5


async def test_openai_compatible_reasoning_content(srv: Server, fk: Fakes) -> None:
    body = _body("openai/deepseek-reasoner:think=3:stream_reasoning=1:tokens=2", {})
    client, done = await _run(srv, body)
    task_id = done["task_id"]
    assert "reasoning_effort" not in fk.openai.requests[-1]
    assert _streamed(client, task_id) == done["reasoning"] == "think0 think1 think2 "
    assert done["text"] == client.text(task_id) == "tok0 tok1 "
    assert done["usage"]["reasoning_tokens"] == 3


@pytest.mark.parametrize(
    ("model", "asked", "field", "message"),
    [
        (
            "anthropic/claude-3-5-haiku-latest",
            {"reasoning": {}},
            "settings.reasoning",
            "anthropic does not support the setting reasoning",
        ),
        (
            "anthropic/claude-sonnet-4-5",
            {"reasoning": {"budget_tokens": 100}},
            "settings.reasoning.budget_tokens",
            "anthropic does not support the setting reasoning.budget_tokens",
        ),
        (
            "openai/o4-mini",
            {"reasoning": {"budget_tokens": 2000}},
            "settings.reasoning.budget_tokens",
            "openai does not support the setting reasoning.budget_tokens",
        ),
        (
            "google/gemini-2.0-flash",
            {"reasoning": {"effort": "low"}},
            "settings.reasoning",
            "google does not support the setting reasoning",
        ),
        (
            "simulated/demo",
            {"reasoning": {"effort": "low"}, "fallbacks": ["openai/gpt-4o-mini"]},
            "settings.reasoning",
            "openai does not support the setting reasoning",
        ),
    ],
)
async def test_settings_a_model_cannot_take_are_refused(
    srv: Server, fk: Fakes, model: str, asked: dict[str, Any], field: str, message: str
) -> None:
    client = await srv.client(await srv.new_key())
    before = len(fk.anthropic.requests) + len(fk.openai.requests) + len(fk.google.requests)
    body = {"messages": [{"role": "user", "content": "hi"}], "model": model, "settings": asked}
    ack = await client.sio.call("execute", body, timeout=20)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
    assert ack["error"]["message"].startswith(message)
    assert ack["error"]["details"]["errors"] == [{"field": field, "message": "unsupported"}]
    after = len(fk.anthropic.requests) + len(fk.openai.requests) + len(fk.google.requests)
    assert after == before  # refused before any call


async def test_bad_reasoning_shapes_are_invalid(srv: Server) -> None:
    client = await srv.client(await srv.new_key())
    for reasoning in (
        {"effort": "max"},
        {"budget_tokens": 0},
        {"budget": 5},
        {"budget_tokens": "9"},
    ):
        body = _body("simulated/demo", reasoning)
        ack = await client.sio.call("execute", body, timeout=20)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
        fields = [e["field"] for e in ack["error"]["details"]["errors"]]
        assert all(f.startswith("settings.reasoning") for f in fields), fields


async def test_openai_compatible_endpoint_streams_reasoning_content(srv: Server) -> None:
    """The official SDK against `/v1/chat/completions`: `reasoning_effort` asks for reasoning,
    which streams as `delta.reasoning_content` (kept by the SDK as an extra field), never in
    `content`; the usage has `completion_tokens_details.reasoning_tokens`."""
    key = await srv.new_key()
    client = openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model="simulated/demo",
            messages=[{"role": "user", "content": "think first"}],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=5,
            reasoning_effort="low",
        )
        chunks = [c async for c in stream]
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        thought = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
        text = "".join(d.content or "" for d in deltas)
        assert len(thought.split()) == 4 and len(text.split()) == 5
        usage = chunks[-1].usage
        assert usage is not None and usage.completion_tokens == 9
        assert usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens == 4
        whole = await client.chat.completions.create(
            model="simulated/demo",
            messages=[{"role": "user", "content": "think first"}],
            max_completion_tokens=5,
            reasoning_effort="low",
        )
        message = whole.choices[0].message
        assert (message.model_extra or {}).get("reasoning_content") == thought
        assert message.content == text
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                reasoning_effort="low",
            )
        error = refused.value.body
        assert isinstance(error, dict) and error["param"] == "reasoning_effort"
        assert error["code"] == "invalid_request"
    finally:
        await client.close()
