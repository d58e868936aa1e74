"""The OpenAI Chat Completions dialect (`POST /v1/chat/completions`, `GET /v1/models`) as
pure functions: a request mapped onto our `ExecuteRequest`, a task's records onto
`chat.completion.chunk`s or one `chat.completion`, our errors onto OpenAI's error shape.
Nothing a client sends is dropped silently: what the engine cannot do is refused by name.

Reasoning: `reasoning_effort` (`low`, `medium`, `high`) is our `settings.reasoning.effort`.
The model's reasoning streams as `delta.reasoning_content`, the field OpenAI-compatible
servers use for it (the official SDK keeps unknown fields of a delta and ignores them
otherwise: `delta.model_extra`), and a whole answer's as `message.reasoning_content`; the
usage reports `completion_tokens_details.reasoning_tokens`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from engine.errors import ClientError, InvalidRequest, PromptrelayError
from engine.protocol import openai_messages as om
from engine.protocol.formats import ResponseFormat
from engine.protocol.requests import ExecuteRequest, decode

# Parameters of the Chat Completions API the engine has no counterpart for (yet); a request
# that sets one is refused naming it. `False`/`null` mean "not used" and pass.
UNSUPPORTED = (
    "functions",
    "function_call",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "verbosity",
    "service_tier",
    "store",
    "metadata",
)
# Our settings named as OpenAI names them: passed through unchanged.
PASSED = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")


class _Open(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


class ChatCompletionRequest(_Open):
    """The body of `POST /v1/chat/completions` that promptrelay accepts."""

    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    messages: list[om.ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: StrictInt | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: StrictInt | None = Field(None, ge=1, le=1)
    response_format: ResponseFormat | None = None
    user: str | None = None  # accepted and ignored: the caller is who the key says
    tools: list[om.FunctionTool] | None = None
    tool_choice: om.ToolChoiceParam | None = None
    parallel_tool_calls: Literal[True] | None = None  # several calls at once is what we do
    reasoning_effort: Literal["low", "medium", "high"] | None = None


def refused(param: str, message: str) -> InvalidRequest:
    """An `invalid_request` that names the parameter (OpenAI's `param`)."""
    return InvalidRequest(message, details={"errors": [{"field": param, "message": message}]})


def _check_refusals(body: dict[str, Any]) -> None:
    for name in UNSUPPORTED:
        if body.get(name) not in (None, False):
            raise refused(name, f"`{name}` is not supported by promptrelay")
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        raise refused("n", "`n` > 1 is not supported: one choice per request")
    if body.get("parallel_tool_calls") is False:
        raise refused(
            "parallel_tool_calls",
            "`parallel_tool_calls: false` is not supported: a model may call several tools at once",
        )
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(message, dict) and message.get("role") == "function":
            raise refused(f"messages.{i}.role", "`function` messages are not supported: use tool")
        for j, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, dict) and part.get("type") not in ("text", "image_url"):
                raise refused(
                    f"messages.{i}.content.{j}",
                    f"content parts of type {part.get('type')!r} are not supported: text and "
                    "image_url only",
                )


def parse_request(body: Any, *, max_bytes: int | None = None) -> ChatCompletionRequest:
    """The body as a ChatCompletionRequest, refusing by name what promptrelay cannot do."""
    if isinstance(body, dict):
        _check_refusals(body)
    return decode(ChatCompletionRequest, body, max_bytes=max_bytes)


def to_execute(req: ChatCompletionRequest) -> ExecuteRequest:
    """Our ExecuteRequest for it; errors name OpenAI's parameters, not our settings."""
    settings: dict[str, Any] = {k: getattr(req, k) for k in PASSED if getattr(req, k) is not None}
    limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if limit is not None:
        settings["max_tokens"] = limit
    if req.stop is not None:
        settings["stop"] = [req.stop] if isinstance(req.stop, str) else req.stop
    if req.response_format is not None:
        settings["response_format"] = req.response_format.model_dump(
            by_alias=True, exclude_none=True
        )
    if req.reasoning_effort is not None:
        settings["reasoning"] = {"effort": req.reasoning_effort}
    payload: dict[str, Any] = {
        "model": req.model,
        "messages": om.neutral_messages(req.messages),
        "settings": settings,
    }
    if req.tools is not None:
        # the OpenAI client sends the whole conversation each time: no continuation waits
        payload.update(tools=om.neutral_tools(req.tools), tool_steps="client")
    if req.tool_choice is not None:
        payload["tool_choice"] = om.neutral_choice(req.tool_choice)
    try:
        return decode(ExecuteRequest, payload)
    except InvalidRequest as exc:
        rename_fields(exc)
        for err in (exc.details or {}).get("errors", []):
            field = err.get("field", "")
            if field.startswith("settings.max_tokens"):
                err["field"] = (
                    "max_completion_tokens"
                    if req.max_completion_tokens is not None
                    else "max_tokens"
                )
            elif field.startswith("settings."):
                err["field"] = openai_field(field).removeprefix("settings.")
        raise


_OURS = (
    (re.compile(r"^(tools\.\d+)\.(name|description|parameters)"), r"\1.function.\2"),
    (re.compile(r"^tool_choice\.name"), "tool_choice.function.name"),
    (re.compile(r"^(messages\.\d+\.content\.\d+)\.(url|data|media_type)$"), r"\1.image_url.url"),
    (re.compile(r"^settings\.reasoning(\..*)?$"), "reasoning_effort"),
)


def openai_field(field: str) -> str:
    """Our field path of a tool or an image part as the OpenAI request names it."""
    for pattern, repl in _OURS:
        field = pattern.sub(repl, field)
    return field


def rename_fields(exc: PromptrelayError) -> None:
    """Name the fields of `exc`'s errors as the OpenAI request names them (in place)."""
    for err in (exc.details or {}).get("errors", []):
        if isinstance(err, dict) and isinstance(err.get("field"), str):
            err["field"] = openai_field(err["field"])


# --- answers ------------------------------------------------------------------------------


def completion_id(task_id: str) -> str:
    return f"chatcmpl-{task_id}"


def chunk(
    cid: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` with one choice."""
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_of(done: dict[str, Any]) -> dict[str, Any]:
    """`task_done`'s usage as OpenAI's (zeros when the task recorded none), the reasoning
    tokens in `completion_tokens_details` as OpenAI reports them."""
    usage = done.get("usage") or {}
    prompt = int(usage.get("input_tokens", 0))
    completion = int(usage.get("output_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens", prompt + completion)),
        "completion_tokens_details": {"reasoning_tokens": int(usage.get("reasoning_tokens", 0))},
    }


def finish_of(done: dict[str, Any]) -> str:
    """The choice's finish reason; a task cancelled mid-answer ends with `stop`."""
    return str(done.get("finish_reason") or "stop")


def final_chunks(
    cid: str, created: int, model: str, done: dict[str, Any], include_usage: bool
) -> list[dict[str, Any]]:
    """What follows the text: the finish chunk, and the usage chunk when asked for."""
    out = [chunk(cid, created, model, {}, finish_of(done))]
    if include_usage:
        last = chunk(cid, created, model, {})
        last["choices"] = []
        last["usage"] = usage_of(done)
        out.append(last)
    return out


def _message(done: dict[str, Any]) -> dict[str, Any]:
    text = done.get("text", "")
    calls = om.openai_tool_calls(done)
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls is not None:
        message = {"role": "assistant", "content": text or None, "tool_calls": calls}
    if done.get("reasoning"):
        message["reasoning_content"] = done["reasoning"]
    return message


def reasoning_chunk(cid: str, created: int, model: str, text: str) -> dict[str, Any]:
    """A `task_reasoning` piece as a chunk's `delta.reasoning_content` (module docstring)."""
    return chunk(cid, created, model, {"reasoning_content": text})


def completion(cid: str, created: int, model: str, done: dict[str, Any]) -> dict[str, Any]:
    """The `chat.completion` of a finished task."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _message(done),
                "finish_reason": finish_of(done),
                "logprobs": None,
            }
        ],
        "usage": usage_of(done),
    }


def _status_of(code: str) -> int:
    stack: list[type[PromptrelayError]] = [PromptrelayError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls.http_status
        stack.extend(cls.__subclasses__())
    return 500


def failure_of(done: dict[str, Any]) -> PromptrelayError | None:
    """The error of a failed task, with its code's HTTP status; None otherwise."""
    if done.get("status") != "failed":
        return None
    error = done.get("error") or {}
    code = str(error.get("code") or "internal")
    exc = PromptrelayError(str(error.get("message") or "the task failed"), code=code)
    exc.http_status = _status_of(code)
    return exc


_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
}


def error_body(exc: PromptrelayError) -> dict[str, Any]:
    """OpenAI's `{error: {message, type, param, code}}` with our stable code."""
    errors = (exc.details or {}).get("errors") or [{}]
    status = exc.http_status
    kind = _TYPES.get(status) or (
        "invalid_request_error" if isinstance(exc, ClientError) or status < 500 else "server_error"
    )
    return {
        "error": {
            "message": exc.message,
            "type": kind,
            "param": errors[0].get("field"),
            "code": exc.code,
        }
    }


def model_entry(
    model_id: str,
    owned_by: str,
    context_window: int | None,
    input_per_mtok: str | None,
    output_per_mtok: str | None,
) -> dict[str, Any]:
    """One `GET /v1/models` entry, with the window and prices as extra fields when known."""
    entry: dict[str, Any] = {"id": model_id, "object": "model", "created": 0, "owned_by": owned_by}
    if context_window is not None:
        entry["context_window"] = context_window
    if input_per_mtok is not None:
        entry["input_usd_per_mtok"] = input_per_mtok
    if output_per_mtok is not None:
        entry["output_usd_per_mtok"] = output_per_mtok
    return entry
