"""OpenAI (and any OpenAI-compatible server) through the official `openai` SDK.

The SDK makes the request (auth, base URL, headers, status errors); the streamed body is read
as raw SSE and decoded by `engine.providers.sse`, without an SDK object per event."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx2
import openai

from engine.errors import ProviderFault, ProviderUnavailable
from engine.providers import faults
from engine.providers.base import Provider, ProviderRequest, ProviderStream, keyed_client
from engine.providers.pricing import catalog_price
from engine.providers.rawstream import RawSSEStream
from engine.providers.reasoning import reasoning_setting, refuse
from engine.providers.sse import OpenAIEvents
from engine.providers.toolwire import openai_message, openai_tools
from engine.usage import Usage

# Settings the Chat Completions API takes as they are.
_PASSTHROUGH = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",  # text, json_object, json_schema: OpenAI's own shape
)


# Model families that do not reason: `reasoning_effort` is refused for them. Others (the o
# series, gpt-5, the models of OpenAI-compatible upstreams) take it.
NON_REASONING = ("gpt-3.5", "gpt-4", "chatgpt-", "gpt-5-chat")


def reasoning_params(settings: dict[str, Any], body: dict[str, Any]) -> None:
    """`settings.reasoning` as `reasoning_effort`; a reasoning model's output limit is
    `max_completion_tokens` (it counts the reasoning too), never `max_tokens`."""
    reasoning = reasoning_setting(settings)
    if reasoning is None:
        return
    if reasoning.get("effort"):
        body["reasoning_effort"] = reasoning["effort"]
    if "max_tokens" in body:
        body["max_completion_tokens"] = body.pop("max_tokens")


def convert_error(exc: openai.OpenAIError) -> ProviderFault:
    """Our error for an SDK error; the message names the status, never the SDK's text."""
    if isinstance(exc, openai.APIStatusError):
        return faults.from_status("openai", exc.status_code, exc.response.headers)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderUnavailable("openai did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return faults.unreachable("openai")
    return faults.cut("openai")


class OpenAIProvider(Provider):
    name = "openai"

    def check_reasoning(
        self, reasoning: dict[str, Any], settings: dict[str, Any], model: str
    ) -> None:
        """Chat Completions takes an effort, never a token budget; non-reasoning models
        take neither."""
        if reasoning.get("budget_tokens") is not None:
            raise refuse(
                self.name, "reasoning.budget_tokens", "Chat Completions takes an effort only"
            )
        if model.startswith(NON_REASONING):
            raise refuse(self.name, "reasoning", f"the model {model} does not reason")

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout_s: float,
        max_retries: int = 0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        # Retries are ours (engine.tasks.retries) by default, so the SDK makes one request.
        # The SDK's aiohttp transport reads a stream for about half the CPU of its default one.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "unset",
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=http_client or openai.DefaultAioHttpClient(timeout=timeout_s),
        )
        self._by_key: dict[str, openai.AsyncOpenAI] = {}

    async def open(self, request: ProviderRequest) -> ProviderStream:
        body: dict[str, Any] = {
            "model": request.model,
            # Plain `{role, content}` text messages go as they are; tool turns and image
            # parts are mapped.
            "messages": [
                m if len(m) == 2 and isinstance(m["content"], str) else openai_message(m)
                for m in request.messages
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        body.update((k, request.settings[k]) for k in _PASSTHROUGH if k in request.settings)
        openai_tools(request.settings, body)
        reasoning_params(request.settings, body)
        client = self._client if request.api_key is None else self._keyed(request.api_key)
        # The SDK makes the request (auth, base URL, headers, status errors) with the body as
        # it is: `post` skips the per-call typed transform of `chat.completions.create`, about
        # 0.7 ms of CPU a call. Its stream object is never iterated: the body is read raw.
        try:
            stream = await client.post(
                "/chat/completions",
                cast_to=object,
                body=body,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
        except openai.OpenAIError as exc:
            raise convert_error(exc) from exc
        response = stream.response
        return RawSSEStream("openai", response.aiter_bytes(), OpenAIEvents(), response.aclose)

    def _keyed(self, api_key: str) -> openai.AsyncOpenAI:
        """The client for a user's own key, made once per key (it shares the connections)."""
        return keyed_client(
            self._by_key, api_key, lambda: self._client.with_options(api_key=api_key)
        )

    def price(self, model: str, usage: Usage) -> Decimal | None:
        return catalog_price("openai", model, usage)

    async def close(self) -> None:
        await self._client.close()
