"""The OpenAI-compatible endpoint, driven by the official `openai` SDK against the real server:
streaming and not, a `provider/model` routed to the fake Anthropic, errors as the SDK's
typed exceptions, the task recorded like an `execute`, a disconnect cancelling the task."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import pytest_asyncio

from engine.errors import InvalidRequest
from engine.protocol import openai_compat as oa
from engine.settings import Settings
from tests.conftest import Server, clear_of_midnight, start_server, stop_server
from tests.provider_env import Fakes, fetch, provider_server, task_row

HELLO = [{"role": "user", "content": "Hello there"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "time"}},
]


OPEN: list[openai.AsyncOpenAI] = []


def sdk(server: Server, key: str) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    OPEN.append(client)
    return client


@pytest_asyncio.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while OPEN:
        await OPEN.pop().close()


def task_of(completion_id: str) -> str:
    assert completion_id.startswith("chatcmpl-")
    return completion_id.removeprefix("chatcmpl-")


async def ended(server: Server, task_id: str) -> Any:
    """The task's row once it has ended (the finalize may trail the last chunk)."""
    for _ in range(600):
        row = await task_row(server, task_id)
        if row["status"] in ("completed", "failed", "cancelled"):
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not end")


def request_of(row: Any) -> Any:
    return json.loads(row["request"])


async def test_streaming_with_usage_matches_the_recorded_task(server: Server) -> None:
    client = sdk(server, await server.new_key())
    stream = await client.chat.completions.create(
        model="simulated/demo",
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 20
    assert usage_chunk.usage.prompt_tokens == 2
    assert usage_chunk.usage.total_tokens == 22

    row = await ended(server, task_of(chunks[0].id))
    assert row["status"] == "completed"
    assert row["response_text"] == text and len(text.split()) == 20
    assert (row["input_tokens"], row["output_tokens"]) == (2, 20)
    assert row["provider"] == "simulated" and row["model"] == "demo"
    assert request_of(row)["settings"] == {"max_tokens": 20}
    runs = await fetch(server, "SELECT * FROM ai_runs WHERE id = $1", row["run_id"])
    assert len(runs) == 1 and runs[0]["user_id"] == row["user_id"]
    logs = await fetch(
        server, "SELECT * FROM ai_usage_logs WHERE task_id = $1", uuid.UUID(task_of(chunks[0].id))
    )
    assert len(logs) == 1


async def test_streaming_without_usage_ends_with_the_finish_chunk(server: Server) -> None:
    client = sdk(server, await server.new_key())
    stream = await client.chat.completions.create(
        model="simulated/demo",
        messages=HELLO,  # type: ignore[arg-type]
        max_completion_tokens=5,
        stream=True,
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


async def test_non_streaming_answer_is_the_simulated_text(server: Server) -> None:
    client = sdk(server, await server.new_key())
    answer = await client.chat.completions.create(
        model="simulated/demo",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}],
            },
        ],
        max_tokens=12,
        temperature=0.5,
        stop=["zzz"],
        seed=7,
        user="ignored",
        response_format={"type": "text"},
    )
    assert answer.object == "chat.completion"
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == 12
    assert answer.model == "simulated/demo"
    row = await task_row(server, task_of(answer.id))
    assert row["status"] == "completed" and row["response_text"] == choice.message.content
    sent = request_of(row)
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
    ]
    assert sent["settings"] == {
        "max_tokens": 12,
        "temperature": 0.5,
        "stop": ["zzz"],
        "seed": 7,
        "response_format": {"type": "text"},
    }


async def test_a_provider_model_routes_to_its_provider(settings: Settings, fk: Fakes) -> None:
    async with provider_server(settings, fk) as server:
        client = sdk(server, await server.new_key())
        stream = await client.chat.completions.create(
            model="anthropic/claude-sonnet-4-5",
            messages=[{"role": "system", "content": "Be brief."}, *HELLO],  # type: ignore[list-item]
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len(fk.anthropic.requests) == 1
        assert fk.anthropic.requests[0]["system"] == "Be brief."
        row = await ended(server, task_of(chunks[0].id))
        assert row["provider"] == "anthropic" and row["status"] == "completed"
        assert row["response_text"] == text and text
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == row["output_tokens"]

        # the provider fails mid-answer: an error event in the stream, the SDK raises
        failing = await client.chat.completions.create(
            model="anthropic/claude-haiku-4-5:error_after=2",
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
        )
        got: list[Any] = []
        with pytest.raises(openai.APIError) as raised:
            async for piece in failing:
                got.append(piece)
        assert got and got[0].choices[0].delta.role == "assistant"
        error: Any = raised.value.body
        assert error["code"] == "provider_unavailable"
        assert (await ended(server, task_of(got[0].id)))["status"] == "failed"
        # and without streaming: the error with its status
        with pytest.raises(openai.InternalServerError) as failed:
            await client.chat.completions.create(
                model="anthropic/claude-haiku-4-5:error_after=2",
                messages=HELLO,  # type: ignore[arg-type]
            )
        assert failed.value.status_code == 503


async def test_models_lists_every_routable_provider(server: Server) -> None:
    client = sdk(server, await server.new_key())
    page = await client.models.list()
    ids = {m.id for m in page.data}
    assert "simulated/demo" in ids
    for provider in ("openai/", "anthropic/", "google/"):
        assert any(i.startswith(provider) for i in ids), provider
    known = next(m for m in page.data if m.id == "anthropic/claude-sonnet-4-5")
    assert known.object == "model" and known.owned_by == "anthropic"
    extra = known.model_extra or {}
    assert extra["context_window"] > 0 and float(extra["input_usd_per_mtok"]) > 0


async def test_a_bad_key_is_an_authentication_error(server: Server) -> None:
    client = sdk(server, "ps_not-a-key")
    with pytest.raises(openai.AuthenticationError) as raised:
        await client.chat.completions.create(model="simulated/demo", messages=HELLO)  # type: ignore[arg-type]
    assert raised.value.code == "unauthorized"
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()


async def test_an_unknown_model_is_not_found(server: Server) -> None:
    client = sdk(server, await server.new_key())
    for model in ("gpt-4o", "nowhere/model"):
        with pytest.raises(openai.NotFoundError) as raised:
            await client.chat.completions.create(model=model, messages=HELLO)  # type: ignore[arg-type]
        body: Any = raised.value.body
        assert body["param"] == "model" and body["code"] == "not_found"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
            "tools.0.function.parameters",  # not a schema of an object
        ),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "g"}}},
            "tool_choice.function.name",
        ),
        ({"tools": TOOLS, "parallel_tool_calls": False}, "parallel_tool_calls"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": 5}}},
            "response_format.json_schema.json_schema.schema",  # the tag, then the field
        ),
        ({"logprobs": True}, "logprobs"),
        ({"temperature": 5}, "temperature"),
        ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
    ],
)
async def test_what_the_engine_cannot_do_is_refused_by_name(
    server: Server, extra: dict[str, Any], param: str
) -> None:
    client = sdk(server, await server.new_key())
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="simulated/demo", messages=HELLO, **extra)  # type: ignore[arg-type]
    body: Any = raised.value.body
    assert body["param"] == param and body["code"] == "invalid_request"
    assert body["type"] == "invalid_request_error"
    rows = await fetch(server, "SELECT 1 FROM ai_tasks")
    assert rows == []  # nothing ran


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}},
            "messages.0.content.1",
        ),
        (
            {"type": "image_url", "image_url": {"url": "http://images.example.com/a.png"}},
            "messages.0.content.1.image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
            "messages.0.content.1.image_url.url",
        ),  # not a PNG
    ],
)
async def test_bad_parts_are_refused_by_name(
    server: Server, part: dict[str, Any], param: str
) -> None:
    client = sdk(server, await server.new_key())
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(
            model="simulated/demo",
            messages=[{"role": "user", "content": [{"type": "text", "text": "see"}, part]}],  # type: ignore[list-item]
        )
    body: Any = raised.value.body
    assert body["param"] == param and body["code"] == "invalid_request", body


async def test_a_client_that_leaves_mid_stream_cancels_the_task(server: Server) -> None:
    client = sdk(server, await server.new_key())
    stream = await client.chat.completions.create(
        model="simulated/demo",
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=5000,  # 100 s at the simulator's default pace
        stream=True,
    )
    first = []
    async for got in stream:
        first.append(got)
        if len(first) == 3:
            break
    task_id = task_of(first[0].id)
    assert (await task_row(server, task_id))["status"] == "running"
    await stream.close()
    row = await ended(server, task_id)
    assert row["status"] == "cancelled"
    assert 0 < row["output_tokens"] < 5000


async def test_a_used_up_quota_is_a_rate_limit_error_with_retry_after(settings: Settings) -> None:
    await clear_of_midnight(settings.quota_utc_offset_min)
    srv = await start_server(settings.model_copy(update={"quota_free_daily": 1}))
    try:
        client = sdk(srv, await srv.new_key())
        await client.chat.completions.create(model="simulated/demo", messages=HELLO, max_tokens=2)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as raised:
            await client.chat.completions.create(model="simulated/demo", messages=HELLO)  # type: ignore[arg-type]
        body: Any = raised.value.body
        assert body["code"] == "quota_exceeded" and body["type"] == "rate_limit_error"
        assert int(raised.value.response.headers["retry-after"]) >= 1
    finally:
        await stop_server(srv)


# --- the mapping alone (engine/protocol/openai_compat.py, no sockets) ---------------------


def test_a_request_maps_onto_an_execute() -> None:
    chat = oa.parse_request(
        {
            "model": "simulated/x",
            "messages": [{"role": "developer", "content": "s"}, {"role": "user", "content": "u"}],
            "max_tokens": 3,
            "max_completion_tokens": 4,
            "stop": "END",
            "top_p": 0.5,
            "presence_penalty": 1,
            "frequency_penalty": -1,
            "user": "someone",
            "n": 1,
        }
    )
    req = oa.to_execute(chat)
    assert req.model == "simulated/x"
    assert [m.role for m in req.messages] == ["system", "user"]
    assert req.settings.model_dump(exclude_none=True) == {
        "max_tokens": 4,
        "stop": ["END"],
        "top_p": 0.5,
        "presence_penalty": 1,
        "frequency_penalty": -1,
    }


def test_a_setting_out_of_range_names_the_openai_parameter() -> None:
    chat = oa.parse_request({"model": "simulated/x", "messages": HELLO, "max_completion_tokens": 0})
    with pytest.raises(InvalidRequest) as raised:
        oa.to_execute(chat)
    assert oa.error_body(raised.value)["error"]["param"] == "max_completion_tokens"


def test_records_map_onto_chunks_and_a_completion() -> None:
    done = {
        "status": "completed",
        "text": "hi there",
        "finish_reason": "length",
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
    }
    finish, usage = oa.final_chunks("c", 1, "m", done, include_usage=True)
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert len(oa.final_chunks("c", 1, "m", done, include_usage=False)) == 1
    answer = oa.completion("c", 1, "m", done)
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "hi there"}
    assert oa.failure_of(done) is None


def test_a_failed_task_is_an_error_with_its_status() -> None:
    done = {"status": "failed", "error": {"code": "provider_unavailable", "message": "busy"}}
    failure = oa.failure_of(done)
    assert failure is not None and failure.http_status == 503
    assert oa.error_body(failure)["error"] == {
        "message": "busy",
        "type": "server_error",
        "param": None,
        "code": "provider_unavailable",
    }


# --- tools and images (docs/protocol.md "OpenAI-compatible endpoint") ----------------------


def _calls_of(chunks: list[Any]) -> list[dict[str, str]]:
    """Streamed `delta.tool_calls` pieces assembled by index, as an SDK user does."""
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        for piece in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            if piece.id:
                assert not call["id"], "id on the first piece only"
                call["id"], call["name"] = piece.id, piece.function.name
                assert piece.type == "function"
            call["arguments"] += piece.function.arguments or ""
    return [calls[i] for i in sorted(calls)]


async def test_a_streamed_tool_call_then_the_result(settings: Settings, fk: Fakes) -> None:
    async with provider_server(settings, fk) as server:
        client = sdk(server, await server.new_key())
        model = "openai/m~tokens=1~tools=2"
        stream = await client.chat.completions.create(
            model=model,
            messages=HELLO,  # type: ignore[arg-type]
            tools=TOOLS,
            tool_choice="auto",
            stream=True,
        )
        chunks = [c async for c in stream]
        calls = _calls_of(chunks)
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "tok0 "
        assert [c["name"] for c in calls] == ["weather", "time"]
        assert [json.loads(c["arguments"]) for c in calls] == [
            {"city": "city0", "days": 1},
            {"city": "city1", "days": 2},
        ]
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
        sent = fk.openai.requests[-1]
        assert [t["function"]["name"] for t in sent["tools"]] == ["weather", "time"]
        assert sent["tool_choice"] == "auto"
        first = await ended(server, task_of(chunks[0].id))
        assert first["status"] == "completed" and first["next_task_id"] is None  # no waiting

        # the follow-up carries the whole conversation: the calls and their results
        answer = await client.chat.completions.create(
            model=model,
            messages=[
                *HELLO,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]},
                        }
                        for c in calls
                    ],
                },
                *(
                    {"role": "tool", "tool_call_id": c["id"], "content": f"r{i}"}
                    for i, c in enumerate(calls)
                ),
            ],  # type: ignore[list-item]
            tools=TOOLS,
        )
        assert answer.choices[0].finish_reason == "stop"
        assert answer.choices[0].message.content == "tok0 "
        assert answer.choices[0].message.tool_calls is None
        body = fk.openai.requests[-1]["messages"]
        assert [m["role"] for m in body] == ["user", "assistant", "tool", "tool"]
        assert body[1]["content"] is None  # the assistant said nothing beside its calls
        assert [t["function"]["name"] for t in body[1]["tool_calls"]] == ["weather", "time"]
        assert [(m["tool_call_id"], m["content"]) for m in body[2:]] == [
            (calls[0]["id"], "r0"),
            (calls[1]["id"], "r1"),
        ]
        rows = await fetch(server, "SELECT status FROM ai_tasks")
        assert sorted(r["status"] for r in rows) == ["completed", "completed"]  # no continuation


async def test_non_streaming_tool_calls_and_a_named_choice(settings: Settings, fk: Fakes) -> None:
    async with provider_server(settings, fk) as server:
        client = sdk(server, await server.new_key())
        answer = await client.chat.completions.create(
            model="openai/m~tokens=0~tools=1",
            messages=HELLO,  # type: ignore[arg-type]
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "time"}},
        )
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls is not None
        call: Any = choice.message.tool_calls[0]
        assert call.type == "function" and call.function.name == "time"
        assert json.loads(call.function.arguments) == {"city": "city0", "days": 1}
        sent = fk.openai.requests[-1]
        assert sent["tool_choice"] == {"type": "function", "function": {"name": "time"}}


async def test_an_image_part_reaches_the_provider(settings: Settings, fk: Fakes) -> None:
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
        "awAAAABJRU5ErkJggg=="
    )
    url = "https://images.example.com/cat.jpg"
    async with provider_server(settings, fk) as server:
        client = sdk(server, await server.new_key())
        answer = await client.chat.completions.create(
            model="openai/m~tokens=1",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                        {"type": "image_url", "image_url": {"url": url, "detail": "auto"}},
                    ],
                }
            ],
        )
        assert answer.choices[0].message.content == "tok0 "
        sent = fk.openai.requests[-1]["messages"][-1]["content"]
        assert sent == [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            {"type": "image_url", "image_url": {"url": url}},
        ]
        row = await ended(server, task_of(answer.id))
        stored = request_of(row)["messages"][-1]["content"]
        assert stored[1] == {"type": "image", "data": png, "media_type": "image/png"}
        assert stored[2] == {"type": "image", "url": url}


def test_a_tool_result_must_answer_an_earlier_call() -> None:
    chat = oa.parse_request(
        {
            "model": "simulated/x",
            "messages": [*HELLO, {"role": "tool", "tool_call_id": "call_9", "content": "r"}],
        }
    )
    with pytest.raises(InvalidRequest) as raised:
        oa.to_execute(chat)
    assert oa.error_body(raised.value)["error"]["param"] == "messages.1.tool_call_id"
