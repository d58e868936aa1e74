"""A local fake of Anthropic's Messages API streaming, speaking the real SSE wire format:
``event: message_start`` / ``content_block_start`` / ``ping`` / ``content_block_delta`` /
``content_block_stop`` / ``message_delta`` (with usage) / ``message_stop``, and in-stream
``event: error`` (``overloaded_error`` inside a 200). Scripted by the model name (see
tests/fakes/scripted.py). ``anthropic.AsyncAnthropic(base_url=fake.base_url)`` works unchanged.

Extended thinking (a request with ``thinking: {type: enabled, budget_tokens}``): a
``thinking`` block first, its ``thinking_delta``s split mid-word across events, then its
``signature_delta``, and with ``redacted=1`` a ``redacted_thinking`` block; thinking tokens
count in ``output_tokens``. Like the API, it refuses a budget under 1024 or not below
``max_tokens``, and a tool-use continuation whose assistant turn does not start with the
thinking blocks it issued, signature and redacted data unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from typing import Any

from aiohttp import web

from tests.fakes.openai_server import parse_model
from tests.fakes.scripted import FakeServer, Script, count_words, token_text
from tests.fakes.tools import FakeCall, planned_calls

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
    }


def error_response(status: int, message: str, retry_after: str = "0") -> web.Response:
    headers = {"retry-after": retry_after} if status == 429 else None
    return web.json_response(error_body(status, message), status=status, headers=headers)


def prompt_texts(body: dict[str, Any]) -> list[str]:
    texts = [body["system"]] if isinstance(body.get("system"), str) else []
    for message in body.get("messages") or []:
        content = message.get("content")
        texts.extend(
            [content]
            if isinstance(content, str)
            else [p.get("text", "") for p in content or [] if isinstance(p, dict)]
        )
    return texts


def message_start(model: str, script: Script, prompt_tokens: int) -> dict[str, Any]:
    """Input usage as Anthropic counts it: cache reads apart from `input_tokens`."""
    usage: dict[str, Any] = {"input_tokens": prompt_tokens - script.cached, "output_tokens": 1}
    if script.cached:
        usage["cache_read_input_tokens"] = script.cached
    return {
        "type": "message_start",
        "message": {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage if script.usage else {"input_tokens": 0, "output_tokens": 0},
        },
    }


def _calls(body: dict[str, Any], script: Script) -> list[FakeCall]:
    """The calls to stream: none after a tool result or without `tools` in the request."""
    messages = body.get("messages") or []
    last = messages[-1].get("content") if messages else None
    if isinstance(last, list) and any(b.get("type") == "tool_result" for b in last):
        return []
    choice = body.get("tool_choice") or {}
    names = [choice["name"]] if choice.get("type") == "tool" else []
    names = names or [t["name"] for t in body.get("tools") or []]
    return planned_calls(script.tools, names, script.bad_args)


def signature_of(thinking: str) -> str:
    return "sig" + hashlib.sha256(thinking.encode()).hexdigest()[:40]


def thinking_error(body: dict[str, Any], issued: dict[str, str]) -> str | None:
    """Why the API would refuse this request's thinking, or None."""
    thinking = body.get("thinking")
    if thinking is None:
        return None
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return "thinking: type must be enabled"
    if not isinstance(budget, int) or budget < 1024:
        return "thinking.budget_tokens: must be greater than or equal to 1024"
    if budget >= int(body.get("max_tokens") or 0):
        return "`max_tokens` must be greater than `thinking.budget_tokens`"
    messages = body.get("messages") or []
    last = messages[-1].get("content") if messages else None
    if not (isinstance(last, list) and any(b.get("type") == "tool_result" for b in last)):
        return None
    asked = messages[-2].get("content") if len(messages) > 1 else None
    first = asked[0] if isinstance(asked, list) and asked else {}
    if first.get("type") not in ("thinking", "redacted_thinking"):
        return (
            "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message "
            "must start with a thinking block."
        )
    for block in asked:
        if block.get("type") == "thinking":
            if issued.get(block.get("signature", "")) != block.get("thinking"):
                return "messages.1.content: Invalid `signature` in `thinking` block"
        elif block.get("type") == "redacted_thinking":
            if block.get("data") not in issued.values():
                return "messages.1.content: Invalid `data` in `redacted_thinking` block"
    return None


class FakeAnthropic(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.issued: dict[str, str] = {}  # signature -> thinking text; redacted data too

    async def _send_thinking(self, send: Any, script: Script) -> int:
        """The thinking block (and a redacted one with `redacted=1`); returns how many."""
        block = {"type": "thinking", "thinking": "", "signature": ""}
        await send(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
        text = "".join(f"think{i} " for i in range(script.think))
        for i in range(script.think):
            word = f"think{i} "
            for piece in (word[:3], word[3:]):  # a token split across two events
                delta = {"type": "thinking_delta", "thinking": piece}
                await send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
        signature = signature_of(text)
        self.issued[signature] = text
        for piece in (signature[:20], signature[20:]):
            delta = {"type": "signature_delta", "signature": piece}
            await send(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
        await send("content_block_stop", {"type": "content_block_stop", "index": 0})
        if not script.redacted:
            return 1
        data = "EmwKAhgBEgy3va3pzix" + signature[-12:]
        self.issued["redacted:" + data] = data
        block = {"type": "redacted_thinking", "data": data}
        await send(
            "content_block_start",
            {"type": "content_block_start", "index": 1, "content_block": block},
        )
        await send("content_block_stop", {"type": "content_block_stop", "index": 1})
        return 2

    @staticmethod
    async def _send_call(send: Any, index: int, call: FakeCall, delay_s: float) -> None:
        """A tool_use block: its start (id, name), input_json_delta pieces, its stop."""
        block = {"type": "tool_use", "id": call.call_id, "name": call.name, "input": {}}
        start = {"type": "content_block_start", "index": index, "content_block": block}
        await send("content_block_start", start)
        for fragment in call.fragments:
            if delay_s:
                await asyncio.sleep(delay_s)
            delta = {"type": "input_json_delta", "partial_json": fragment}
            await send(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        await send("content_block_stop", {"type": "content_block_stop", "index": index})

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body)
        # Older SDKs send `x-api-key`, current ones `Authorization: Bearer`; both are accepted.
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("x-api-key") or auth.removeprefix("Bearer ").strip()
        if not key or key == "bad-key":
            return error_response(401, "invalid x-api-key")
        model = str(body.get("model", ""))
        if "body" in parse_model(model):
            return await self.send_body(request, parse_model(model)["body"])
        script = Script.parse(model)
        if script.status is not None:
            return error_response(script.status, f"fake error {script.status}", script.retry_after)
        if self.fails_now(model, script):
            return error_response(script.fail_with, "fake failure", script.retry_after)
        if "max_tokens" not in body or body.get("stream") is not True:
            return error_response(400, "this fake serves streaming calls with max_tokens")
        refused = thinking_error(body, self.issued)
        if refused is not None:
            return error_response(400, refused)
        if body.get("thinking") is None:
            script = dataclasses.replace(script, think=0, redacted=False)
        calls = _calls(body, script)
        return await self._stream(request, model, script, count_words(prompt_texts(body)), calls)

    async def _stream(
        self,
        request: web.Request,
        model: str,
        script: Script,
        prompt_tokens: int,
        calls: list[FakeCall] | None = None,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )

        async def send(event: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        finished = False
        try:
            await resp.prepare(request)
            await send("message_start", message_start(model, script, prompt_tokens))
            first = await self._send_thinking(send, script) if script.think else 0
            await send(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": first,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            await send("ping", {"type": "ping"})
            for i in range(script.tokens):
                if script.cut_after is not None and i >= script.cut_after:
                    finished = True
                    self.cut(request)
                    return resp
                if script.error_after is not None and i >= script.error_after:
                    await send("error", error_body(529, "Overloaded"))
                    await resp.write_eof()
                    finished = True
                    return resp
                if script.delay_s:
                    await asyncio.sleep(script.delay_s)
                await send(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": first,
                        "delta": {"type": "text_delta", "text": token_text(i)},
                    },
                )
            await send("content_block_stop", {"type": "content_block_stop", "index": first})
            for index, call in enumerate(calls or (), start=first + 1):
                await self._send_call(send, index, call, script.delay_s)
            stop = script.finish or ("tool_use" if calls else "end_turn")
            await send(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": script.tokens + script.think if script.usage else 0},
                },
            )
            await send("message_stop", {"type": "message_stop"})
            await resp.write_eof()
            finished = True
            return resp
        except ConnectionError:
            return resp
        finally:
            if not finished:
                self.disconnected()
