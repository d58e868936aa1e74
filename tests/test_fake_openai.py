"""Tests proving the fake OpenAI server works with the official ``openai`` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
import pytest_asyncio

try:  # works whether or not tests/ is a package / the repo root is on sys.path
    from tests.fakes.openai_server import FakeOpenAI
except ModuleNotFoundError:
    from fakes.openai_server import FakeOpenAI  # type: ignore[no-redef]

pytestmark = pytest.mark.asyncio

MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "say three words"},
]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    yield server
    await server.stop()


def client(fake: FakeOpenAI, key: str = "test") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=fake.base_url, max_retries=0)


async def test_start_returns_v1_url(fake: FakeOpenAI) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/v1")


async def test_stream_text_and_usage(fake: FakeOpenAI) -> None:
    async with client(fake) as c:
        stream = await c.chat.completions.create(
            model="fake:tokens=3",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [ch async for ch in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "tok0 tok1 tok2 "
    finishes = [
        ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 3)
    assert chunks[-1].usage.total_tokens == 8
    assert fake.requests[-1]["model"] == "fake:tokens=3"
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    assert fake.disconnects == 0


async def test_default_tokens_and_custom_finish(fake: FakeOpenAI) -> None:
    async with client(fake) as c:
        stream = await c.chat.completions.create(
            model="gpt-4o-mini:finish=length", messages=MESSAGES, stream=True
        )
        chunks = [ch async for ch in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == "".join(f"tok{i} " for i in range(8))
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(ch.usage is None for ch in chunks)


async def test_usage_zero_sends_no_usage(fake: FakeOpenAI) -> None:
    async with client(fake) as c:
        stream = await c.chat.completions.create(
            model="gpt-4o-mini:tokens=2:usage=0",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [ch async for ch in stream]
    assert all(ch.usage is None for ch in chunks)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "tok0 tok1 "
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_cut_after_breaks_stream(fake: FakeOpenAI) -> None:
    seen: list[str] = []
    finishes: list[str] = []
    async with client(fake) as c:
        stream = await c.chat.completions.create(
            model="fake:tokens=5:cut_after=2", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIConnectionError):
            async for ch in stream:
                for choice in ch.choices:
                    seen.append(choice.delta.content or "")
                    if choice.finish_reason:
                        finishes.append(choice.finish_reason)
    assert "".join(seen) == "tok0 tok1 "
    assert finishes == []
    assert fake.cuts == 1 and fake.disconnects == 0


@pytest.mark.parametrize(
    ("model", "key", "exc"),
    [
        ("fake:status=500", "test", openai.InternalServerError),
        ("fake:status=429", "test", openai.RateLimitError),
        ("gpt-4o-mini", "bad-key", openai.AuthenticationError),
    ],
)
async def test_error_statuses(fake: FakeOpenAI, model: str, key: str, exc: type[Exception]) -> None:
    async with client(fake, key) as c:
        with pytest.raises(exc) as info:
            await c.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert isinstance(info.value, openai.APIStatusError)
    if key == "bad-key":
        assert info.value.code == "invalid_api_key"
        assert info.value.type == "invalid_request_error"
    if "429" in model:
        assert info.value.response.headers["retry-after"] == "0"


async def test_fail_first_then_succeeds(fake: FakeOpenAI) -> None:
    async with client(fake) as c:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                await c.chat.completions.create(
                    model="fake:tokens=1:fail_first=2", messages=MESSAGES
                )
        done = await c.chat.completions.create(
            model="fake:tokens=1:fail_first=2", messages=MESSAGES
        )
    assert done.choices[0].message.content == "tok0 "
    assert done.usage is not None and done.usage.completion_tokens == 1
    assert len(fake.requests) == 3


async def test_sdk_retries_through_fail_first(fake: FakeOpenAI) -> None:
    c = openai.AsyncOpenAI(api_key="test", base_url=fake.base_url, max_retries=2)
    async with c:
        stream = await c.chat.completions.create(
            model="fake:tokens=2:fail_first=1", messages=MESSAGES, stream=True
        )
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream])
    assert text == "tok0 tok1 "
    assert len(fake.requests) == 2


async def test_early_close_counts_disconnect(fake: FakeOpenAI) -> None:
    async with client(fake) as c:
        stream = await c.chat.completions.create(
            model="fake:tokens=50:delay_ms=2000", messages=MESSAGES, stream=True
        )
        first = await stream.__anext__()
        assert first.choices[0].delta.role == "assistant"
        await stream.close()
    assert await fake.wait_for_disconnect(timeout=2.0)
    assert fake.disconnects == 1
