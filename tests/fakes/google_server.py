"""A local fake of the Gemini API's ``models/{model}:streamGenerateContent?alt=sse``, speaking
the real wire format (SSE ``data:`` lines of GenerateContentResponse JSON with
``usageMetadata``; the last one carries ``finishReason``). Scripted by the model name (see
tests/fakes/scripted.py). ``genai.Client(http_options={"base_url": fake.base_url})`` works.

Thinking (``generationConfig.thinkingConfig.includeThoughts``): ``think=N`` thought parts
(``{"text": "think{i} ", "thought": true}``) first, one event each, and
``usageMetadata.thoughtsTokenCount`` apart from ``candidatesTokenCount`` (their sum plus the
prompt is ``totalTokenCount``, as Gemini counts them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from aiohttp import web

from tests.fakes.openai_server import parse_model
from tests.fakes.scripted import FakeServer, Script, count_words, token_text
from tests.fakes.tools import FakeCall, planned_calls

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_SUFFIX = ":streamGenerateContent"


def error_response(status: int, message: str, retry_after: str = "0") -> web.Response:
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    headers = {"retry-after": retry_after} if status == 429 else None
    return web.json_response(body, status=status, headers=headers)


def prompt_texts(body: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    contents = list(body.get("contents") or []) + ([system] if isinstance(system, dict) else [])
    for content in contents:
        texts.extend(p.get("text", "") for p in content.get("parts") or [])
    return texts


def _call_part(call: FakeCall) -> dict[str, Any]:
    args = json.loads(call.arguments)
    return {"functionCall": {"id": call.call_id, "name": call.name, "args": args}}


def _calls(body: dict[str, Any], script: Script) -> list[FakeCall]:
    """The calls to stream: none after a function response or without tools."""
    contents = body.get("contents") or []
    parts = contents[-1].get("parts") or [] if contents else []
    if any("functionResponse" in p for p in parts):
        return []
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    names = list(config.get("allowedFunctionNames") or [])
    for tool in body.get("tools") or [] if not names else []:
        names.extend(d["name"] for d in tool.get("functionDeclarations") or [])
    return planned_calls(script.tools, names)


class FakeGemini(FakeServer):
    @staticmethod
    async def _send_calls(
        resp: web.StreamResponse, response: Any, calls: list[FakeCall], script: Script
    ) -> None:
        """The first call in one event, the others together in the next; the last event
        carries finishReason STOP and the usage."""
        groups = [calls[:1], calls[1:]] if len(calls) > 1 else [calls]
        for n, group in enumerate(groups):
            if script.delay_s:
                await asyncio.sleep(script.delay_s)
            data = response("", script.tokens, n == len(groups) - 1)
            data["candidates"][0]["content"]["parts"] = [_call_part(c) for c in group]
            await resp.write(f"data: {json.dumps(data)}\r\n\r\n".encode())

    @staticmethod
    async def _send_thoughts(resp: web.StreamResponse, response: Any, script: Script) -> None:
        """`think=N` thought parts, one event each, before the answer."""
        for t in range(script.think):
            data = response("", 0, False)
            data["candidates"][0]["content"]["parts"] = [{"text": f"think{t} ", "thought": True}]
            await resp.write(f"data: {json.dumps(data)}\r\n\r\n".encode())

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/models/{rest:.+}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rest = request.match_info["rest"]
        if not rest.endswith(_SUFFIX) or request.query.get("alt") != "sse":
            return error_response(404, "this fake serves streamGenerateContent?alt=sse only")
        body = await request.json()
        self.record(request, body)
        key = request.headers.get("x-goog-api-key", "")
        if not key or key == "bad-key":
            return error_response(400, "API key not valid. Please pass a valid API key.")
        model = rest[: -len(_SUFFIX)]
        if "body" in parse_model(model):
            return await self.send_body(request, parse_model(model)["body"])
        script = Script.parse(model)
        if script.status is not None:
            return error_response(script.status, f"fake error {script.status}", script.retry_after)
        if self.fails_now(model, script):
            return error_response(script.fail_with, "fake failure", script.retry_after)
        calls = _calls(body, script)
        config = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
        if not config.get("includeThoughts"):
            script = dataclasses.replace(script, think=0)
        return await self._stream(request, model, script, count_words(prompt_texts(body)), calls)

    async def _stream(
        self,
        request: web.Request,
        model: str,
        script: Script,
        prompt_tokens: int,
        calls: list[FakeCall] | None = None,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})

        def response(text: str, i: int, last: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": text}], "role": "model"},
                "index": 0,
            }
            usage: dict[str, Any] = {
                "promptTokenCount": prompt_tokens,
                "totalTokenCount": prompt_tokens + script.think,
            }
            if script.think:
                usage["thoughtsTokenCount"] = script.think
            if last:
                candidate["finishReason"] = script.finish or "STOP"
                total = prompt_tokens + i + 1 + script.think
                usage.update(candidatesTokenCount=i + 1, totalTokenCount=total)
                if script.cached:
                    usage["cachedContentTokenCount"] = script.cached
            out: dict[str, Any] = {
                "candidates": [candidate],
                "modelVersion": model,
                "responseId": "fake",
            }
            if script.usage:
                out["usageMetadata"] = usage
            return out

        finished = False
        try:
            await resp.prepare(request)
            await self._send_thoughts(resp, response, script)
            for i in range(script.tokens):
                if script.cut_after is not None and i >= script.cut_after:
                    finished = True
                    self.cut(request)
                    return resp
                if script.delay_s:
                    await asyncio.sleep(script.delay_s)
                data = response(token_text(i), i, i == script.tokens - 1 and not calls)
                await resp.write(f"data: {json.dumps(data)}\r\n\r\n".encode())
            if calls:
                await self._send_calls(resp, response, calls, script)
            await resp.write_eof()
            finished = True
            return resp
        except ConnectionError:
            return resp
        finally:
            if not finished:
                self.disconnected()
