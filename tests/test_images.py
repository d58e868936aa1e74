"""Images in messages (docs/protocol.md "Images"): what each provider's fake receives for an
image message, the limits and checks with the field they name, and the stored run."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from engine.providers.anthropic import AnthropicProvider
from engine.providers.base import Provider, ProviderRequest
from engine.providers.google import GoogleProvider
from engine.providers.openai import OpenAIProvider
from engine.providers.parts import IMAGE_TOKENS
from engine.settings import Settings
from tests.conftest import Server, start_server, stop_server
from tests.provider_env import SERVER_KEY, Fakes, fakes, fetch, provider_server

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PNG64 = base64.b64encode(PNG).decode()
URL = "https://images.example.com/cat.jpg"


def parts(*images: dict[str, Any], text: str = "what is in these?") -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}, *images]


def data_image(data: str = PNG64, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "data": data, "media_type": media_type}


def url_image(url: str = URL) -> dict[str, Any]:
    return {"type": "image", "url": url, "media_type": "image/jpeg"}


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


EXPECTED: dict[str, Any] = {
    "openai": {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in these?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG64}"}},
            {"type": "image_url", "image_url": {"url": URL}},
        ],
    },
    "anthropic": {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in these?"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PNG64},
            },
            {"type": "image", "source": {"type": "url", "url": URL}},
        ],
    },
    "google": {
        "role": "user",
        "parts": [
            {"text": "what is in these?"},
            {"inlineData": {"mimeType": "image/png", "data": PNG64}},
            {"fileData": {"fileUri": URL, "mimeType": "image/jpeg"}},
        ],
    },
}


@pytest.mark.parametrize("name", ["openai", "anthropic", "google"])
async def test_each_provider_receives_the_images(env: Fakes, name: str) -> None:
    provider = _provider(name, env)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": parts(data_image(), url_image())},
    ]
    try:
        request = ProviderRequest("m~tokens=2", messages, {"max_tokens": 5})
        async with await provider.open(request) as stream:
            text = "".join([d async for d in stream if isinstance(d, str)])
        assert text == "tok0 tok1 "
    finally:
        await provider.close()
    sent = env.of(name).requests[-1]
    turns = sent.get("messages") or sent.get("contents")
    assert turns[-1] == EXPECTED[name]


def execute_body(content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "model": "simulated/img",
        "settings": {"max_tokens": 3, "tokens_per_second": 0},
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


async def test_image_message_through_the_server_to_openai(settings: Settings, env: Fakes) -> None:
    async with provider_server(settings, env) as srv:
        client = await srv.client(await srv.new_key())
        body = execute_body(parts(data_image()), model="openai/m~tokens=2")
        ack = await client.call("execute", body)
        assert ack["ok"], ack
        done = await client.wait_done(ack["task_id"])
        assert done["status"] == "completed", done
    sent = env.openai.requests[-1]["messages"][-1]
    assert sent["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG64}"


async def test_stored_run_keeps_the_parts_and_the_simulator_counts_images(
    server: Server,
) -> None:
    client = await server.client(await server.new_key())
    content = parts(data_image(), url_image(), text="two pictures")
    ack = await client.call("execute", execute_body(content))
    assert ack["ok"], ack
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "completed", done
    # words of the text, and a fixed count per image
    assert done["usage"]["input_tokens"] == 2 + 2 * IMAGE_TOKENS
    rows = await fetch(
        server, "SELECT messages FROM ai_runs WHERE id = $1", uuid.UUID(ack["run_id"])
    )
    stored = rows[0]["messages"]
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert stored[0] == {"role": "user", "content": content}
    assert stored[1]["role"] == "assistant"
    # a follow-up in the run sends the stored parts again
    follow = execute_body("and now?", run_id=ack["run_id"])
    ack2 = await client.call("execute", follow)
    assert ack2["ok"], ack2
    done2 = await client.wait_done(ack2["task_id"])
    assert done2["usage"]["input_tokens"] > 2 * IMAGE_TOKENS


@pytest.mark.parametrize(
    ("content", "code", "limit", "field"),
    [
        (parts(*[url_image()] * 3), "invalid_request", "images", "messages.0.content.3"),
        (
            parts(data_image(base64.b64encode(PNG + b"x" * 100).decode())),
            "payload_too_large",
            "image_bytes",
            "messages.0.content.1.data",
        ),
        (
            parts(data_image(), data_image()),
            "payload_too_large",
            "images_total_bytes",
            "messages.0.content.2.data",
        ),
    ],
)
async def test_image_limits(
    settings: Settings, content: Any, code: str, limit: str, field: str
) -> None:
    small = {"max_images": 2, "max_image_bytes": 100, "max_images_total_bytes": 60}
    srv = await start_server(settings.model_copy(update=small))
    try:
        client = await srv.client(await srv.new_key())
        ack = await client.call("execute", execute_body(content))
        assert ack["ok"] is False and ack["error"]["code"] == code, ack
        details = ack["error"]["details"]
        assert details["limit"] == limit and details["errors"][0]["field"] == field, ack
        assert await fetch(srv, "SELECT task_id FROM ai_tasks") == []
    finally:
        await stop_server(srv)


@pytest.mark.parametrize(
    ("message", "field", "says"),
    [
        (
            {"role": "user", "content": parts(data_image("not base64!"))},
            "messages.0.content.1.data",
            "base64",
        ),
        (
            {"role": "user", "content": parts(data_image(media_type="image/jpeg"))},
            "messages.0.content.1.data",
            "image/jpeg",
        ),
        (
            {"role": "user", "content": parts(data_image(media_type="image/bmp"))},
            "messages.0.content.1.media_type",
            "image/png",
        ),
        (
            {"role": "user", "content": parts({"type": "image", "data": PNG64})},
            "messages.0.content.1",
            "media_type",
        ),
        (
            {"role": "user", "content": parts(url_image("file:///etc/passwd"))},
            "messages.0.content.1.url",
            "https",
        ),
        (
            {"role": "user", "content": parts(url_image("http://images.example.com/a.png"))},
            "messages.0.content.1.url",
            "https",
        ),
        (
            {"role": "user", "content": parts(url_image("https://127.0.0.1/a.png"))},
            "messages.0.content.1.url",
            "public",
        ),
        (
            {"role": "user", "content": parts(url_image("https://169.254.169.254/latest"))},
            "messages.0.content.1.url",
            "public",
        ),
        (
            {"role": "user", "content": parts({"type": "image", "url": URL, "data": PNG64})},
            "messages.0.content.1",
            "either",
        ),
        (
            {"role": "user", "content": parts({"type": "audio", "data": "x"})},
            "messages.0.content.1",
            "text or image",
        ),
        ({"role": "system", "content": parts(url_image())}, "messages.0", "user messages"),
        ({"role": "user", "content": []}, "messages.0", "at least one part"),
    ],
)
async def test_bad_images_name_the_field(
    server: Server, message: dict[str, Any], field: str, says: str
) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", {**execute_body("x"), "messages": [message]})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
    errors = ack["error"]["details"]["errors"]
    assert errors[0]["field"] == field and says in errors[0]["message"], errors


async def test_run_previews_and_search_read_text_parts_never_image_data(
    server: Server, http: aiohttp.ClientSession
) -> None:
    key = await server.new_key()
    client = await server.client(key)
    content = parts(data_image(), text="a picture of the harbour")
    ack = await client.call("execute", execute_body(content))
    assert ack["ok"], ack
    await client.wait_done(ack["task_id"])
    headers = {"Authorization": f"Bearer {key}"}

    async def search(q: str) -> list[dict[str, Any]]:
        async with http.get(f"{server.url}/v1/runs", params={"q": q}, headers=headers) as resp:
            assert resp.status == 200
            return list((await resp.json())["items"])

    assert [r["id"] for r in await search("harbour")] == [ack["run_id"]]
    assert await search(PNG64[:12]) == []  # the image's data is not text
    assert await search('"type"') == []  # nor is the JSON of the part list
    # the newest message is the user's while no answer is stored: its text, not its JSON
    rows = await fetch(
        server,
        "SELECT message_text(m) AS text FROM ai_runs, jsonb_array_elements(messages) m"
        " WHERE id = $1",
        uuid.UUID(ack["run_id"]),
    )
    assert rows[0]["text"] == "a picture of the harbour"
