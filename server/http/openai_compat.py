"""The OpenAI-compatible routes: `POST /v1/chat/completions` (streaming or not) and
`GET /v1/models`, so code written against the OpenAI SDK runs against promptrelay.

A completion is an `execute` (engine/tasks/service.py) read back through the relay the way
`GET /v1/tasks/{id}/stream` reads it; the mapping both ways is engine/protocol/openai_compat.py.
A client that goes away before the end cancels its task."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from db.users import User
from engine.errors import InvalidRequest, NotFound, PromptrelayError, Unauthorized
from engine.protocol import openai_compat as oa
from engine.protocol.openai_messages import tool_call_delta
from engine.providers.pricing import format_money
from server.errors import client_error
from server.http.cors import prepare_cors
from server.http.requests import body_too_large, current_user, json_body
from server.realtime.sessions import SESSIONS
from server.state import ENGINE, METRICS, RELAY, SETTINGS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
POLL_S = 0.5  # how often a quiet stream checks that its client is still there
REVOKED = "revoked"


def _retry_after(exc: PromptrelayError) -> dict[str, str]:
    details = exc.details or {}
    retry_ms = details.get("retry_after_ms")
    if isinstance(retry_ms, int | float):
        return {"Retry-After": str(max(1, int(retry_ms / 1000 + 0.999)))}
    resets_at = details.get("resets_at")
    if isinstance(resets_at, str):
        with contextlib.suppress(ValueError):
            left = datetime.fromisoformat(resets_at) - datetime.now(UTC)
            return {"Retry-After": str(max(1, int(left.total_seconds() + 0.999)))}
    return {}


def openai_error(request: web.Request, exc: PromptrelayError) -> web.Response:
    """Our error in OpenAI's shape, with its HTTP status (and `Retry-After` when known)."""
    request.app[METRICS].error_code(exc.code)
    return web.json_response(oa.error_body(exc), status=exc.http_status, headers=_retry_after(exc))


def openai_errors(handler: Handler) -> Handler:
    """Every failure of `handler` answered as `{error: {message, type, param, code}}`."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            exc: PromptrelayError = body_too_large(request)
        except web.HTTPException:
            raise
        except Exception as raised:
            exc = client_error(raised, f"HTTP {request.method} {request.path}")
        return openai_error(request, exc)

    return wrapped


class TaskFeed:
    """Relay subscriber that queues a task's records for the handler that answers."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def send(self, event: str, payload: dict[str, Any]) -> None:
        self.queue.put_nowait((event, payload))

    async def revoke(self) -> None:
        self.queue.put_nowait((REVOKED, {}))

    async def next(self, request: web.Request) -> tuple[str, dict[str, Any]] | None:
        """The next record, or None once the client has gone away."""
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                return None
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(self.queue.get(), POLL_S)


@routes.get("/v1/models")
@openai_errors
async def list_models(request: web.Request) -> web.StreamResponse:
    await current_user(request)
    data = [
        oa.model_entry(
            f"{provider}/{found.model}",
            provider,
            found.context_window,
            None if found.input_per_mtok is None else format_money(found.input_per_mtok),
            None if found.output_per_mtok is None else format_money(found.output_per_mtok),
        )
        for provider, found in request.app[ENGINE].registry.listed_models()
    ]
    return web.json_response({"object": "list", "data": data})


@routes.post("/v1/chat/completions")
@openai_errors
async def chat_completions(request: web.Request) -> web.StreamResponse:
    user = await current_user(request)
    chat = oa.parse_request(
        await json_body(request), max_bytes=request.app[SETTINGS].max_payload_bytes
    )
    engine = request.app[ENGINE]
    try:
        engine.registry.resolve(chat.model)
    except InvalidRequest as exc:  # OpenAI answers an unknown model with 404
        raise NotFound(exc.message, details=exc.details) from None
    execute = oa.to_execute(chat)
    key = f"openai:{uuid.uuid4()}"
    feed = TaskFeed()
    sessions = request.app[SESSIONS]
    await sessions.open(key, user, feed.revoke)  # the per-user connection cap
    relay = request.app[RELAY]
    task_id = ""
    try:
        try:
            result = await engine.execute(user, execute)
        except PromptrelayError as exc:  # a field of ours named as the OpenAI request names it
            oa.rename_fields(exc)
            raise
        task_id = str(result.task_id)
        await relay.subscribe(task_id, key, feed, 0, fresh=result.status == "running")
        answer = _stream if chat.stream else _complete
        return await answer(request, user, chat, task_id, feed)
    finally:
        if task_id:
            relay.unsubscribe(task_id, key)
        await sessions.close(key)


async def _cancel(request: web.Request, user: User, task_id: str) -> None:
    """The client left (or may no longer read): the task stops, recorded `cancelled`."""
    log.debug("client of task %s left; cancelling it", task_id)
    await asyncio.shield(request.app[ENGINE].cancel(user, uuid.UUID(task_id)))


async def _complete(
    request: web.Request, user: User, chat: oa.ChatCompletionRequest, task_id: str, feed: TaskFeed
) -> web.StreamResponse:
    created = int(time.time())
    while True:
        record = await feed.next(request)
        if record is None or record[0] == REVOKED:
            await _cancel(request, user, task_id)
            if record is None:
                return web.Response(status=499)  # nobody reads it
            raise Unauthorized("the credentials of this request are no longer valid")
        event, payload = record
        if event != "task_done":
            continue
        failure = oa.failure_of(payload)
        if failure is not None:
            return openai_error(request, failure)
        model = f"{payload['provider']}/{payload['model']}"
        body = oa.completion(oa.completion_id(task_id), created, model, payload)
        return web.json_response(body, headers={"X-Promptrelay-Task-Id": task_id})


def _data(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


async def _stream(
    request: web.Request, user: User, chat: oa.ChatCompletionRequest, task_id: str, feed: TaskFeed
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Promptrelay-Task-Id": task_id,
        }
    )
    prepare_cors(request, response)
    cid, created, model = oa.completion_id(task_id), int(time.time()), chat.model
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    started: set[str] = set()  # calls whose first piece (id, type, name) went out
    try:
        await response.prepare(request)
        await response.write(
            _data(oa.chunk(cid, created, model, {"role": "assistant", "content": ""}))
        )
        while True:
            record = await feed.next(request)
            if record is None:
                raise ConnectionResetError
            event, payload = record
            if event == "task_chunk":
                await response.write(
                    _data(oa.chunk(cid, created, model, {"content": payload["text"]}))
                )
            elif event == "task_reasoning":
                reasoning = oa.reasoning_chunk(cid, created, model, payload["text"])
                await response.write(_data(reasoning))
            elif event == "task_tool_call":
                first = payload["call_id"] not in started
                started.add(payload["call_id"])
                delta = tool_call_delta(payload, first)
                await response.write(_data(oa.chunk(cid, created, model, delta)))
            elif event == REVOKED:
                await _cancel(request, user, task_id)
                error = Unauthorized("the credentials of this stream are no longer valid")
                await response.write(_data(oa.error_body(error)))
                break
            elif event == "task_done":
                failure = oa.failure_of(payload)
                if failure is not None:
                    await response.write(_data(oa.error_body(failure)))
                    break
                for last in oa.final_chunks(cid, created, model, payload, include_usage):
                    await response.write(_data(last))
                await response.write(b"data: [DONE]\n\n")
                break
        await response.write_eof()
    except ConnectionError:  # the client closed the stream before its end
        await _cancel(request, user, task_id)
    return response
