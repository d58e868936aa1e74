"""One contract, three adapters: openai/, anthropic/ and google/ through their official SDKs
against local fakes of each wire protocol, end to end through the Socket.IO gateway."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from engine.settings import Settings
from tests.conftest import Server, assert_intact
from tests.nodes import until
from tests.provider_env import (
    Fakes,
    event_kinds,
    fetch,
    provider_server,
    task_row,
)


def _openai_system(body: dict[str, Any]) -> bool:
    return [m["role"] for m in body["messages"]] == ["system", "user"]


def _anthropic_system(body: dict[str, Any]) -> bool:
    return body["system"] == "be brief" and [m["role"] for m in body["messages"]] == ["user"]


def _google_system(body: dict[str, Any]) -> bool:
    return body["systemInstruction"]["parts"][0]["text"] == "be brief" and [
        c["role"] for c in body["contents"]
    ] == ["user"]


def _bearer(headers: dict[str, str]) -> str:
    return headers.get("authorization", "").removeprefix("Bearer ")


@dataclass(frozen=True)
class Flavour:
    provider: str
    model: str  # a model genai-prices knows
    input_per_m: Decimal
    output_per_m: Decimal
    length_reason: str  # the provider's own word for "stopped at max tokens"
    system_placed: Callable[[dict[str, Any]], bool]
    key_sent: Callable[[dict[str, str]], str]

    def ref(self, options: str = "") -> str:
        # `~` separates the fakes' options: `:` is refused in a Gemini model name
        return f"{self.provider}/{self.model}{options.replace(':', '~')}"


FLAVOURS = [
    Flavour(
        "openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.6"), "length", _openai_system, _bearer
    ),
    Flavour(
        "anthropic",
        "claude-haiku-4-5",
        Decimal("1"),
        Decimal("5"),
        "max_tokens",
        _anthropic_system,
        _bearer,
    ),
    Flavour(
        "google",
        "gemini-2.0-flash",
        Decimal("0.1"),
        Decimal("0.4"),
        "MAX_TOKENS",
        _google_system,
        lambda h: h.get("x-goog-api-key", ""),
    ),
]
each = pytest.mark.parametrize("flavour", FLAVOURS, ids=[f.provider for f in FLAVOURS])


def body(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "say some words please"},
        ],
        "model": model,
        **extra,
    }


async def run(server: Server, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", payload)
    assert ack["ok"], ack
    done = await client.wait_done(ack["task_id"])
    assert_intact(client, ack["task_id"])
    return ack["task_id"], done


@each
async def test_stream_usage_cost_and_system_prompt(
    srv: Server, fk: Fakes, flavour: Flavour
) -> None:
    task_id, done = await run(srv, body(flavour.ref(), settings={"stop": ["never"]}))
    assert done["status"] == "completed" and done["finish_reason"] == "stop"
    assert done["text"] == "".join(f"tok{i} " for i in range(8))
    assert done["provider"] == flavour.provider and done["model"] == flavour.model
    # The fakes count 6 prompt words; usage is each provider's own report.
    assert done["usage"] == {
        "input_tokens": 6,
        "output_tokens": 8,
        "total_tokens": 14,
        "reasoning_tokens": 0,
    }
    expected = (6 * flavour.input_per_m + 8 * flavour.output_per_m) / 1_000_000
    assert Decimal(done["cost_usd"]) == expected
    fake = fk.of(flavour.provider)
    assert flavour.system_placed(fake.requests[-1])
    row = await task_row(srv, task_id)
    assert row["usage_source"] == "provider" and row["cost_usd"] == expected


@each
async def test_finish_reason_is_mapped(srv: Server, flavour: Flavour) -> None:
    _, done = await run(srv, body(flavour.ref(f":tokens=2:finish={flavour.length_reason}")))
    assert done["status"] == "completed" and done["finish_reason"] == "length"


@each
async def test_rejected_key_is_provider_error_and_not_retried(
    settings: Settings, fk: Fakes, flavour: Flavour
) -> None:
    setting = f"{'gemini' if flavour.provider == 'google' else flavour.provider}_api_key"
    async with provider_server(settings, fk, **{setting: SecretStr("bad-key")}) as server:
        task_id, done = await run(server, body(flavour.ref()))
    assert done["status"] == "failed" and done["error"]["code"] == "provider_error"
    assert done["error"]["retryable"] is False
    assert len(fk.of(flavour.provider).requests) == 1
    assert "bad-key" not in str(done) and "Traceback" not in str(done)


@each
async def test_server_error_then_success_is_retried(
    srv: Server, fk: Fakes, flavour: Flavour
) -> None:
    task_id, done = await run(srv, body(flavour.ref(":fail_first=1:tokens=3")))
    assert done["status"] == "completed" and done["text"] == "tok0 tok1 tok2 "
    assert len(fk.of(flavour.provider).requests) == 2
    kinds = await event_kinds(srv, task_id)
    assert kinds.count("provider_call") == 2 and kinds.count("retry") == 1


@each
async def test_rate_limit_exhausts_retries_then_falls_back(
    srv: Server, fk: Fakes, flavour: Flavour
) -> None:
    fallback = "simulated/default"
    task_id, done = await run(
        srv, body(flavour.ref(":status=429"), settings={"fallbacks": [fallback], "max_tokens": 3})
    )
    assert len(fk.of(flavour.provider).requests) == 3  # 1 + provider_retries
    assert done["status"] == "completed" and done["provider"] == "simulated"
    assert done["model"] == "default"
    kinds = await event_kinds(srv, task_id)
    assert kinds.count("retry") == 2 and kinds.count("fallback") == 1
    row = await task_row(srv, task_id)
    assert (row["provider"], row["model"]) == ("simulated", "default")


@each
async def test_rate_limit_without_fallback_fails_unavailable(
    srv: Server, fk: Fakes, flavour: Flavour
) -> None:
    _, done = await run(srv, body(flavour.ref(":status=503")))
    assert done["status"] == "failed" and done["error"]["code"] == "provider_unavailable"
    assert done["error"]["retryable"] is True and done["text"] == ""
    assert len(fk.of(flavour.provider).requests) == 3


@each
async def test_cut_after_first_token_fails_with_partial_text_no_retry(
    srv: Server, fk: Fakes, flavour: Flavour
) -> None:
    task_id, done = await run(srv, body(flavour.ref(":tokens=10:cut_after=3")))
    assert done["status"] == "failed" and done["finish_reason"] == "error"
    assert done["error"]["code"] == "provider_unavailable"
    assert done["text"] == "tok0 tok1 tok2 "
    assert len(fk.of(flavour.provider).requests) == 1  # the client saw text: never retried
    row = await task_row(srv, task_id)
    assert row["status"] == "failed" and row["response_text"] == "tok0 tok1 tok2 "
    assert row["usage_source"] == "estimated" and row["output_tokens"] > 0


@each
async def test_missing_usage_is_estimated(srv: Server, flavour: Flavour) -> None:
    task_id, done = await run(srv, body(flavour.ref(":usage=0:tokens=20")))
    assert done["status"] == "completed"
    assert done["usage"]["output_tokens"] > 0 and done["usage"]["input_tokens"] > 0
    assert (await task_row(srv, task_id))["usage_source"] == "estimated"


@each
async def test_cancel_closes_upstream_and_keeps_usage(
    srv: Server, fk: Fakes, flavour: Flavour
) -> None:
    client = await srv.client(await srv.new_key())
    ack = await client.call("execute", body(flavour.ref(":tokens=500:delay_ms=50")))
    task_id = ack["task_id"]
    await client.wait_chunks(task_id)
    assert (await client.call("cancel", {"task_id": task_id}))["status"] == "cancelled"
    assert await fk.of(flavour.provider).wait_for_disconnect(5.0)
    done = await client.wait_done(task_id)
    assert done["status"] == "cancelled" and done["usage"]["output_tokens"] > 0
    assert done["text"].startswith("tok0 ")


@each
async def test_first_token_stall_is_timeout(
    settings: Settings, fk: Fakes, flavour: Flavour
) -> None:
    async with provider_server(settings, fk, first_token_timeout_s=0.5) as server:
        _, done = await run(server, body(flavour.ref(":tokens=2:delay_ms=5000")))
    assert done["status"] == "failed" and done["error"]["code"] == "timeout"
    assert len(fk.of(flavour.provider).requests) == 1


@each
async def test_stall_after_first_token_is_timeout_with_partial_text(
    settings: Settings, fk: Fakes, flavour: Flavour
) -> None:
    async with provider_server(settings, fk, first_token_timeout_s=5, idle_timeout_s=0.3) as server:
        _, done = await run(server, body(flavour.ref(":tokens=3:delay_ms=1000")))
    assert done["status"] == "failed" and done["error"]["code"] == "timeout"
    assert done["text"] == "tok0 " and len(fk.of(flavour.provider).requests) == 1


async def test_unknown_fallback_is_refused_before_anything_runs(srv: Server, fk: Fakes) -> None:
    client = await srv.client(await srv.new_key())
    ack = await client.call(
        "execute", body("openai/gpt-4o-mini", settings={"fallbacks": ["nope/x"]})
    )
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request"
    assert ack["error"]["details"]["errors"][0]["field"] == "settings.fallbacks.0"
    assert fk.openai.requests == []


async def test_anthropic_in_stream_overloaded_error(srv: Server, fk: Fakes) -> None:
    # After the first token: the task fails with the partial text, no retry.
    task_id, done = await run(srv, body("anthropic/claude-haiku-4-5:error_after=2"))
    assert done["status"] == "failed" and done["error"]["code"] == "provider_unavailable"
    assert done["text"] == "tok0 tok1 " and len(fk.anthropic.requests) == 1
    # Before the first token: retried like any 5xx, then the fallback answers.
    task_id, done = await run(
        srv,
        body(
            "anthropic/claude-haiku-4-5:error_after=0",
            settings={"fallbacks": ["google/gemini-2.0-flash~tokens=2"]},
        ),
    )
    assert done["status"] == "completed" and done["provider"] == "google"
    assert len(fk.anthropic.requests) == 4 and done["text"] == "tok0 tok1 "
    assert (await event_kinds(srv, task_id)).count("fallback") == 1


@pytest.mark.parametrize("provider", ["anthropic", "google"])
async def test_rate_limit_waits_for_retry_after_then_succeeds(
    settings: Settings, fk: Fakes, provider: str
) -> None:
    model = {"anthropic": "claude-haiku-4-5", "google": "gemini-2.0-flash"}[provider]
    async with provider_server(settings, fk, provider_backoff_max_s=5) as server:
        task_id, done = await run(
            server, body(f"{provider}/{model}~fail_first=1~fail_with=429~retry_after=1~tokens=2")
        )
        rows = await fetch(
            server,
            "SELECT kind, metadata FROM task_events WHERE task_id = $1 AND kind = 'retry'",
            uuid.UUID(task_id),
        )
    assert done["status"] == "completed" and len(fk.of(provider).requests) == 2
    assert len(rows) == 1 and json.loads(rows[0]["metadata"])["wait_ms"] >= 1000


@each
async def test_cancel_before_the_first_token_closes_upstream(
    srv: Server, fk: Fakes, flavour: Flavour
) -> None:
    client = await srv.client(await srv.new_key())
    ack = await client.call("execute", body(flavour.ref(":tokens=3:delay_ms=10000")))
    fake = fk.of(flavour.provider)
    await until(lambda: bool(fake.requests), 20, "the provider request")
    assert (await client.call("cancel", {"task_id": ack["task_id"]}))["status"] == "cancelled"
    assert await fake.wait_for_disconnect(5.0)
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "cancelled" and done["text"] == ""
    assert len(fake.requests) == 1
