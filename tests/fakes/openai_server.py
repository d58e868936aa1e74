"""A local fake of the OpenAI Chat Completions API (streaming and not), built on aiohttp.

It speaks the real wire protocol, so ``openai.AsyncOpenAI(base_url=fake_url)`` works unchanged.
Behaviour is selected through the request's ``model`` string: a base name followed by
colon- (or tilde-) separated ``key=value`` options, e.g. ``"fake:tokens=5:delay_ms=10"``.

Options:
    tokens=N      number of output tokens (default 8); token i is ``f"tok{i} "``
    delay_ms=D    sleep D ms before each token (default 0)
    usage=0|1     send the final usage chunk when ``stream_options.include_usage`` (default 1)
    cut_after=K   after K tokens, close the TCP connection (no finish_reason, no [DONE])
    status=CODE   answer CODE immediately with OpenAI's error JSON (429 adds ``retry-after: 0``)
    finish=REASON finish_reason of the last chunk (default ``stop``)
    fail_first=N  the first N requests with this exact model string get a 500
    echo=1        the output is the last message's text, as one token (a model whose answer
                  the caller controls)
    context=N     a context window of N tokens (four characters each): longer input gets
                  OpenAI's 400 ``context_length_exceeded``
    tools=N, bad_args=1  tool calls (tests/fakes/tools.py), streamed after the text tokens
    think=N       a reasoning model: N reasoning tokens, counted in ``completion_tokens`` and
                  ``completion_tokens_details.reasoning_tokens`` as OpenAI reports them; like
                  OpenAI's reasoning models it refuses ``max_tokens`` (it takes
                  ``max_completion_tokens``)
    stream_reasoning=1  with think=N: stream them first as ``delta.reasoning_content``
                  (``"think{i} "``), as OpenAI-compatible reasoning servers do
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServerBase
from tests.fakes.tools import FakeCall, planned_calls

_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def parse_model(model: str) -> dict[str, str]:
    """Split ``"base:k=v:k2=v2"`` into ``{"k": "v", "k2": "v2"}`` (the base name is ignored).

    ``~`` separates options as well as ``:``: a Gemini model name is a URL path segment, where
    promptrelay refuses ``:`` (it would name another method of the model)."""
    opts: dict[str, str] = {}
    for part in re.split("[:~]", model)[1:]:
        key, sep, value = part.partition("=")
        if sep:
            opts[key.strip()] = value.strip()
    return opts


def _calls(body: dict[str, Any], opts: dict[str, str]) -> list[FakeCall]:
    """The calls to stream: none after a tool result or without `tools` in the request."""
    messages = body.get("messages") or []
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool":
        return []
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        names = [choice["function"]["name"]]
    else:
        names = [t["function"]["name"] for t in body.get("tools") or []]
    return planned_calls(int(opts.get("tools", 0)), names, opts.get("bad_args") == "1")


def _call_deltas(calls: list[FakeCall]) -> list[dict[str, Any]]:
    """OpenAI's shape: id, type and name on a call's first piece, then argument fragments."""
    out: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        function = {"name": call.name, "arguments": ""}
        out.append(
            {
                "tool_calls": [
                    {"index": index, "id": call.call_id, "type": "function", "function": function}
                ]
            }
        )
        out.extend(
            {"tool_calls": [{"index": index, "function": {"arguments": f}}]} for f in call.fragments
        )
    return out


async def _send_end(
    send: Any, chunk: Any, calls: list[FakeCall], delay: float, finish: str
) -> None:
    """The tool calls' pieces, then the chunk with the finish reason."""
    for delta in _call_deltas(calls):
        if delay and "id" not in delta["tool_calls"][0]:
            await asyncio.sleep(delay)
        await send(chunk(delta))
    await send(chunk({}, finish))


def _reasoning(
    opts: dict[str, str], body: dict[str, Any], usage: dict[str, Any]
) -> tuple[web.Response | None, list[str]]:
    """`think=N`: the refusal of `max_tokens`, the reasoning count in `usage`, and the
    reasoning pieces to stream (with `stream_reasoning=1`)."""
    think = int(opts.get("think", 0))
    if not think:
        return None, []
    if "max_tokens" in body:
        refused = error_response(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "unsupported_parameter",
        )
        return refused, []
    usage["completion_tokens"] += think
    usage["total_tokens"] += think
    usage["completion_tokens_details"] = {"reasoning_tokens": think}
    return None, [f"think{i} " for i in range(think)] if opts.get("stream_reasoning") else []


def _context_error(body: dict[str, Any], context: int | None) -> web.Response | None:
    """OpenAI's 400 for input longer than the `context=N` window."""
    if context is not None and count_prompt_chars(body.get("messages")) / 4 > context:
        return error_response(
            400,
            f"This model's maximum context length is {context} tokens.",
            "context_length_exceeded",
        )
    return None


def token_text(i: int) -> str:
    """The deterministic text of output token ``i``."""
    return f"tok{i} "


def count_prompt_words(messages: Any) -> int:
    """Whitespace-separated words across all message contents (string or text parts)."""
    total = 0
    for msg in messages if isinstance(messages, list) else []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"].split())
    return total


def _last_text(messages: Any) -> str:
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        content = messages[-1].get("content")
        return content if isinstance(content, str) else ""
    return ""


def count_prompt_chars(messages: Any) -> int:
    """Characters of every message's string content."""
    items = messages if isinstance(messages, list) else []
    return sum(len(m["content"]) for m in items if isinstance(m.get("content"), str))


def error_response(status: int, message: str, code: str | None = None) -> web.Response:
    """An OpenAI-shaped JSON error response."""
    etype, default_code = _ERROR_TYPES.get(status, ("server_error", None))
    body = {
        "error": {"message": message, "type": etype, "param": None, "code": code or default_code}
    }
    headers = {"retry-after": "0"} if status == 429 else None
    return web.json_response(body, status=status, headers=headers)


def _auth_error(request: web.Request) -> web.Response | None:
    """OpenAI's 401 for a missing or bad key, None for a good one."""
    auth = request.headers.get("Authorization", "")
    key = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
    if not key:
        return error_response(401, "You didn't provide an API key.", "invalid_api_key")
    if key == "bad-key":
        return error_response(401, f"Incorrect API key provided: {key}.", "invalid_api_key")
    return None


class FakeOpenAI(FakeServerBase):
    """In-process fake OpenAI server; ``await start()`` returns its ``.../v1`` base URL."""

    def __init__(self) -> None:
        super().__init__()
        self.cuts: int = 0
        self._fail_counts: defaultdict[str, int] = defaultdict(int)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._handle)

    def url_of(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_response(400, "Request body is not valid JSON.")
        if not isinstance(body, dict):
            return error_response(400, "Request body must be a JSON object.")
        self.requests.append(body)

        refused = _auth_error(request)
        if refused is not None:
            return refused

        model = str(body.get("model", ""))
        try:
            opts = parse_model(model)
            n_tokens = int(opts.get("tokens", 8))
            delay = int(opts.get("delay_ms", 0)) / 1000.0
            send_usage = opts.get("usage", "1") != "0"
            cut_after = int(opts["cut_after"]) if "cut_after" in opts else None
            status = int(opts["status"]) if "status" in opts else None
            fail_first = int(opts.get("fail_first", 0))
            context = int(opts["context"]) if "context" in opts else None
            int(opts.get("think", 0))
        except ValueError:
            return error_response(400, f"Bad fake model options: {model!r}")
        if "body" in opts:
            return await self.send_body(request, opts["body"])
        finish = opts.get("finish", "stop")
        texts = [token_text(i) for i in range(n_tokens)]
        if opts.get("echo") == "1":
            texts = [_last_text(body.get("messages"))]
            n_tokens = 1

        if status is not None:
            return error_response(status, f"Fake error {status} for model {model!r}.")
        if fail_first:
            self._fail_counts[model] += 1
            if self._fail_counts[model] <= fail_first:
                return error_response(500, f"Fake failure {self._fail_counts[model]}/{fail_first}.")

        prompt_tokens = count_prompt_words(body.get("messages"))
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n_tokens,
            "total_tokens": prompt_tokens + n_tokens,
        }
        refused, thoughts = _reasoning(opts, body, usage)
        refused = _context_error(body, context) or refused
        if refused is not None:
            return refused
        created = int(time.time())
        if not body.get("stream"):
            text = "".join(texts)
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": finish,
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                }
            )
        stream_opts = body.get("stream_options") or {}
        include_usage = bool(stream_opts.get("include_usage")) and send_usage
        calls = _calls(body, opts)
        finish = opts.get("finish", "tool_calls") if calls else finish
        return await self._stream(
            request,
            model,
            created,
            texts,
            delay,
            cut_after,
            finish,
            usage if include_usage else None,
            calls,
            thoughts,
        )

    async def _stream(
        self,
        request: web.Request,
        model: str,
        created: int,
        texts: list[str],
        delay: float,
        cut_after: int | None,
        finish: str,
        usage: dict[str, Any] | None,
        calls: list[FakeCall] | None = None,
        thoughts: list[str] | None = None,
    ) -> web.StreamResponse:
        """Write the SSE stream; count client disconnects that happen before [DONE]."""
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        async def send(data: Any) -> None:
            payload = data if isinstance(data, str) else json.dumps(data)
            await resp.write(f"data: {payload}\n\n".encode())

        finished = cut = False
        try:
            await resp.prepare(request)
            await send(chunk({"role": "assistant", "content": ""}))
            for thought in thoughts or ():
                await send(chunk({"content": None, "reasoning_content": thought}))
            for i, text in enumerate(texts):
                if cut_after is not None and i >= cut_after:
                    cut = True
                    self.cuts += 1
                    if request.transport is not None:
                        # flushes what was written, then drops the TCP link
                        request.transport.close()
                    return resp
                if delay:
                    await asyncio.sleep(delay)
                await send(chunk({"content": text}))
            await _send_end(send, chunk, calls or [], delay, finish)
            if usage is not None:
                await send(
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            await send("[DONE]")
            await resp.write_eof()
            finished = True
            return resp
        except (ConnectionResetError, ConnectionError):
            return resp
        finally:
            if not finished and not cut and not self._stopping:
                self.disconnects += 1
                self._disconnect_event.set()
