"""Pure parts of retries and providers (retry waits, retry-after, prices, key sealing, request
shapes), and prices end to end: overrides, unknown models, cached input tokens."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest
import pytest_asyncio

from db import prices
from db.pool import connect
from engine.accounts.secrets import KeyRing, KeyUnreadable, new_secret
from engine.providers.anthropic import build_params
from engine.providers.base import ProviderRequest
from engine.providers.faults import retry_after
from engine.providers.google import build_contents
from engine.providers.pricing import catalog_price, override_price
from engine.settings import Settings
from engine.tasks.plan import RetryPolicy
from engine.usage import Usage
from tests.conftest import Server
from tests.provider_env import Fakes, fakes, provider_server, task_row


def test_backoff_is_bounded_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(retries=3, backoff_s=1.0, backoff_max_s=4.0)
    rng = random.Random(7)
    waits = [policy.wait_s(n, None, rng) for n in range(3)]
    assert all(w is not None and 0 <= w <= min(4.0, 2**n) for n, w in enumerate(waits))
    assert policy.wait_s(3, None) is None  # out of retries
    assert (
        policy.wait_s(0, 2.5, rng) == pytest.approx(2.5, abs=1.0)
        and (policy.wait_s(0, 2.5, rng) or 0) >= 2.5
    )
    assert policy.wait_s(0, 30.0) is None  # longer than the cap: move on to a fallback


def test_retry_after_header_forms() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 20 < (retry_after({"retry-after": later}) or 0) <= 30
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "-5"}) == 0.0
    assert retry_after(None) is None


def test_prices_are_exact_and_cached_input_is_cheaper() -> None:
    price = prices.ModelPrice(Decimal("2"), Decimal("8"), Decimal("0.5"))
    # 600 uncached x $2 + 400 cached x $0.5 + 100 output x $8, per million
    assert override_price(price, Usage(1000, 100, 400)) == Decimal("0.0022")
    no_cache_price = prices.ModelPrice(Decimal("2"), Decimal("8"))
    assert override_price(no_cache_price, Usage(1000, 100, 400)) == Decimal("0.0028")
    full = catalog_price("openai", "gpt-4o-mini", Usage(1_000_000, 0))
    cached = catalog_price("openai", "gpt-4o-mini", Usage(1_000_000, 0, 1_000_000))
    assert full == Decimal("0.15") and cached is not None and cached < full
    assert catalog_price("openai", "my-own-finetune-xyz", Usage(10, 10)) is None


def test_key_ring_rotation_and_binding() -> None:
    old, new = new_secret(), new_secret()
    user = uuid.uuid4()
    before = KeyRing([old]).seal(user, "openai", "sk-123")
    rotated_ring = KeyRing([new, old])
    assert rotated_ring.open(user, "openai", before) == "sk-123"  # old keys still decrypt
    after = rotated_ring.seal(user, "openai", "sk-456")
    with pytest.raises(KeyUnreadable):
        KeyRing([old]).open(user, "openai", after)  # new writes use the newest key
    assert KeyRing([new]).open(user, "openai", rotated_ring.rotate(before)) == "sk-123"
    with pytest.raises(KeyUnreadable):
        rotated_ring.open(uuid.uuid4(), "openai", before)  # another user's row
    with pytest.raises(KeyUnreadable):
        rotated_ring.open(user, "google", before)  # another provider
    with pytest.raises(KeyUnreadable):
        rotated_ring.open(user, "openai", before[:-4] + "AAAA")
    with pytest.raises(ValueError, match="Fernet"):
        KeyRing(["not-a-key"])


def test_request_shapes() -> None:
    request = ProviderRequest(
        model="m",
        settings={"max_tokens": 9, "stop": ["x"], "temperature": 0.1},
        messages=[
            {"role": "system", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "system", "content": "d"},
        ],
        api_key="sk-hidden",
    )
    assert "sk-hidden" not in repr(request)
    params = build_params(request)
    assert params["system"] == "a\n\nd" and params["max_tokens"] == 9
    assert [m["role"] for m in params["messages"]] == ["user", "assistant"]
    assert params["stop_sequences"] == ["x"] and "temperature" not in params
    system, contents = build_contents(request.messages)
    assert system == "a\n\nd" and [c["role"] for c in contents] == ["user", "model"]


@pytest_asyncio.fixture
async def srv(settings: Settings) -> AsyncIterator[tuple[Server, Fakes]]:
    async with fakes() as f, provider_server(settings, f) as server:
        yield server, f


async def _done(server: Server, model: str) -> dict[str, object]:
    client = await server.client(await server.new_key())
    ack = await client.call(
        "execute", {"model": model, "messages": [{"role": "user", "content": "a b c d e f"}]}
    )
    return await client.wait_done(ack["task_id"])


async def test_unknown_price_is_null_and_an_override_prices_it(srv: tuple[Server, Fakes]) -> None:
    server, _ = srv
    done = await _done(server, "openai/my-local-llm")
    assert done["status"] == "completed" and done["cost_usd"] is None
    row = await task_row(server, str(done["task_id"]))
    assert row["cost_usd"] is None and row["status"] == "completed"
    conn = await connect(server.settings.database_url or "")
    try:
        logged = await conn.fetchval(
            "SELECT cost_usd FROM ai_usage_logs WHERE task_id = $1", row["task_id"]
        )
        assert logged is None, "an unpriced task is billed unknown, not 0"
        await prices.set_price(
            conn, "openai", "my-local-llm", prices.ModelPrice(Decimal("3"), Decimal("7"))
        )
    finally:
        await conn.close()
    done = await _done(server, "openai/my-local-llm")
    # 6 input words, 8 output tokens at $3 / $7 per million
    assert done["cost_usd"] == "0.000074"


async def test_cached_input_tokens_are_priced_as_cached(srv: tuple[Server, Fakes]) -> None:
    server, _ = srv
    done = await _done(server, "anthropic/claude-haiku-4-5:cached=4")
    assert done["usage"] == {
        "input_tokens": 6,
        "output_tokens": 8,
        "total_tokens": 14,
        "reasoning_tokens": 0,
    }
    # claude-haiku-4-5: $1 / M input, $0.10 / M cache reads, $5 / M output
    expected = (2 * Decimal(1) + 4 * Decimal("0.1") + 8 * Decimal(5)) / 1_000_000
    assert Decimal(str(done["cost_usd"])) == expected
