"""OpenAI (and any OpenAI-compatible server) through the official `openai` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx2
import openai

from engine.errors import ProviderFault, ProviderUnavailable
from engine.providers import faults
from engine.providers.base import Provider, ProviderRequest, ProviderStream, Usage
from engine.providers.pricing import catalog_price

# Settings the Chat Completions API takes as they are.
_PASSTHROUGH = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)


def convert_error(exc: openai.OpenAIError) -> ProviderFault:
    """Our error for an SDK error; the message names the status, never the SDK's text."""
    if isinstance(exc, openai.APIStatusError):
        return faults.from_status("openai", exc.status_code, exc.response.headers)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderUnavailable("openai did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return faults.unreachable("openai")
    return faults.cut("openai")


def _usage(usage: Any) -> Usage:
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(usage.prompt_tokens, usage.completion_tokens, cached)


class OpenAIStream(ProviderStream):
    def __init__(self, stream: openai.AsyncStream[Any]) -> None:
        self._stream = stream

    async def deltas(self) -> AsyncIterator[str]:
        try:
            async for chunk in self._stream:
                if chunk.usage is not None:
                    self.usage = _usage(chunk.usage)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason is not None:
                    self.finish_reason = choice.finish_reason
                content = choice.delta.content if choice.delta is not None else None
                if content:
                    yield content
        except openai.OpenAIError as exc:
            raise convert_error(exc) from exc
        except (httpx2.TransportError, OSError) as exc:
            raise faults.cut("openai") from exc

    async def aclose(self) -> None:
        await self._stream.close()


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(
        self, api_key: str | None, base_url: str | None, timeout_s: float, max_retries: int = 0
    ) -> None:
        # Retries are ours (engine.tasks.retries) by default, so the SDK makes one request.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "unset",
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
        )

    async def open(self, request: ProviderRequest) -> ProviderStream:
        params = {k: request.settings[k] for k in _PASSTHROUGH if k in request.settings}
        client = self._client
        if request.api_key is not None:
            client = client.with_options(api_key=request.api_key)
        try:
            stream = await client.chat.completions.create(  # type: ignore[call-overload]
                model=request.model,
                messages=request.messages,
                stream=True,
                stream_options={"include_usage": True},
                **params,
            )
        except openai.OpenAIError as exc:
            raise convert_error(exc) from exc
        return OpenAIStream(stream)

    def price(self, model: str, usage: Usage) -> Decimal | None:
        return catalog_price("openai", model, usage)

    async def close(self) -> None:
        await self._client.close()
