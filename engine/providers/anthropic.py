"""Anthropic through the official `anthropic` SDK: Messages API, streaming.

The SDK makes the request (auth, base URL, headers, status errors); the streamed body is read
as raw SSE and decoded by `engine.providers.sse`, without an SDK object per event."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import httpx2

from engine.errors import ProviderFault
from engine.providers import faults
from engine.providers.anthropic_events import AnthropicEvents, anthropic_error
from engine.providers.base import Provider, ProviderRequest, ProviderStream, keyed_client
from engine.providers.parts import text_of
from engine.providers.pricing import catalog_price
from engine.providers.rawstream import RawSSEStream
from engine.providers.reasoning import budget_of, reasoning_setting, refuse
from engine.providers.toolwire import anthropic_messages, anthropic_tools
from engine.usage import Usage

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; used when the request sets none
# Our sampling settings, in the Messages API's names. The current API (and SDK) has no
# temperature, top_p, seed or penalties: those are refused (`unsupported`).
_SAMPLING = {"stop": "stop_sequences"}
MIN_THINKING_BUDGET = 1024  # the least `thinking.budget_tokens` the API takes
# Model families without extended thinking: `settings.reasoning` is refused for them.
NON_THINKING = ("claude-3-5", "claude-3-haiku", "claude-3-opus", "claude-3-sonnet", "claude-2")


def convert_error(exc: anthropic.AnthropicError) -> ProviderFault:
    """Our error for an SDK error; the message never carries the SDK's text."""
    if isinstance(exc, anthropic.APIStatusError):
        return anthropic_error(exc.type, exc.status_code, exc.response.headers)
    if isinstance(exc, anthropic.APIConnectionError):
        return faults.unreachable("anthropic")
    return faults.cut("anthropic")


def split_system(
    messages: list[dict[str, Any]], thinking: bool = False
) -> tuple[str | None, list[dict[str, Any]]]:
    """Anthropic takes system prompts in `system`, not among the messages; tool turns are
    content blocks (with their thinking blocks first when `thinking` is on)."""
    system = [text_of(m["content"]) for m in messages if m["role"] == "system"]
    rest = anthropic_messages([m for m in messages if m["role"] != "system"], thinking)
    return ("\n\n".join(system) if system else None), rest


def build_params(request: ProviderRequest) -> dict[str, Any]:
    """The Messages API body of one streaming call."""
    settings = request.settings
    reasoning = reasoning_setting(settings)
    system, messages = split_system(request.messages, reasoning is not None)
    params: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "stream": True,
        "max_tokens": int(settings.get("max_tokens") or DEFAULT_MAX_TOKENS),
    }
    if reasoning is not None:
        budget = budget_of(reasoning)
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if not settings.get("max_tokens"):  # the budget is part of max_tokens: room to answer
            params["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    if system is not None:
        params["system"] = system
    params.update(
        (name, settings[key])
        for key, name in _SAMPLING.items()
        if settings.get(key) not in (None, [])
    )
    fmt = settings.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        # Structured outputs: the answer's text is JSON matching the schema.
        schema = fmt["json_schema"]["schema"]
        params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    anthropic_tools(settings, params)
    return params


class AnthropicProvider(Provider):
    name = "anthropic"
    unsupported = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
    # `json_schema` is its structured outputs (`output_config.format`); "any JSON object" has
    # no mechanism of its own there.
    unsupported_formats = ("json_object",)

    def check_reasoning(
        self, reasoning: dict[str, Any], settings: dict[str, Any], model: str
    ) -> None:
        """Extended thinking: a budget of at least 1024 tokens, below `max_tokens`, on a
        model that thinks, and no forced tool choice (the API refuses each of these)."""
        if model.startswith(NON_THINKING):
            raise refuse(self.name, "reasoning", f"the model {model} has no extended thinking")
        budget = budget_of(reasoning)
        if budget < MIN_THINKING_BUDGET:
            raise refuse(
                self.name, "reasoning.budget_tokens", f"at least {MIN_THINKING_BUDGET} tokens"
            )
        limit = settings.get("max_tokens")
        if limit is not None and budget >= int(limit):
            raise refuse(self.name, "reasoning.budget_tokens", "it must be below max_tokens")
        choice = settings.get("tool_choice")
        if choice == "required" or isinstance(choice, dict):
            raise refuse(self.name, "reasoning", "thinking cannot be on while a tool is forced")

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout_s: float,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        # Retries are ours (engine.tasks.retries), so the SDK makes exactly one request.
        # The SDK's aiohttp transport reads a stream for less CPU than its default one.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or "unset",
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
            http_client=http_client or anthropic.DefaultAioHttpClient(timeout=timeout_s),
        )
        self._by_key: dict[str, anthropic.AsyncAnthropic] = {}

    async def open(self, request: ProviderRequest) -> ProviderStream:
        client = self._client if request.api_key is None else self._keyed(request.api_key)
        # The SDK makes the request (auth, base URL, headers, status errors) with the body as
        # it is: `post` skips the per-call typed transform of `messages.create`. Its stream
        # object is never iterated: the body is read raw.
        try:
            stream = await client.post(
                "/v1/messages",
                cast_to=object,
                body=build_params(request),
                stream=True,
                stream_cls=anthropic.AsyncStream[object],
            )
        except anthropic.AnthropicError as exc:
            raise convert_error(exc) from exc
        response = stream.response
        reader = AnthropicEvents(response.headers)
        return RawSSEStream("anthropic", response.aiter_bytes(), reader, response.aclose)

    def _keyed(self, api_key: str) -> anthropic.AsyncAnthropic:
        """The client for a user's own key, made once per key (it shares the connections)."""
        return keyed_client(
            self._by_key, api_key, lambda: self._client.with_options(api_key=api_key)
        )

    def price(self, model: str, usage: Usage) -> Decimal | None:
        return catalog_price("anthropic", model, usage)

    async def close(self) -> None:
        await self._client.close()
