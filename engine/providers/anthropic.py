"""Anthropic through the official `anthropic` SDK: Messages API, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx2

from engine.errors import ProviderFault, ProviderRejected, ProviderUnavailable
from engine.providers import faults
from engine.providers.base import Provider, ProviderRequest, ProviderStream, Usage
from engine.providers.pricing import catalog_price

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; used when the request sets none

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Error types that may pass, also when they arrive inside a 200 stream as an `error` event.
_TRANSIENT = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}


def convert_error(exc: anthropic.AnthropicError) -> ProviderFault:
    """Our error for an SDK error; the message never carries the SDK's text."""
    if isinstance(exc, anthropic.APIStatusError):
        if exc.type in _TRANSIENT:
            return ProviderUnavailable(
                f"anthropic reported {exc.type}",
                retry_after_s=faults.retry_after(exc.response.headers),
            )
        if exc.status_code == 200:  # an in-stream error of a kind that will not pass
            return ProviderRejected(f"anthropic reported {exc.type or 'an error'}")
        return faults.from_status("anthropic", exc.status_code, exc.response.headers)
    if isinstance(exc, anthropic.APIConnectionError):
        return faults.unreachable("anthropic")
    return faults.cut("anthropic")


def split_system(messages: list[dict[str, str]]) -> tuple[str | None, list[dict[str, str]]]:
    """Anthropic takes system prompts in `system`, not among the messages."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"]
    return ("\n\n".join(system) if system else None), rest


def build_params(request: ProviderRequest) -> dict[str, Any]:
    """The Messages API body of one streaming call."""
    settings = request.settings
    system, messages = split_system(request.messages)
    params: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "stream": True,
        "max_tokens": int(settings.get("max_tokens") or DEFAULT_MAX_TOKENS),
    }
    if system is not None:
        params["system"] = system
    # The current Messages API (and SDK) takes no sampling settings (temperature, top_p):
    # they are not sent. Stop sequences are.
    if settings.get("stop"):
        params["stop_sequences"] = settings["stop"]
    return params


class AnthropicStream(ProviderStream):
    def __init__(self, stream: anthropic.AsyncStream[Any]) -> None:
        self._stream = stream
        self._stop_reason: str | None = None
        self._input = self._cached = self._output = 0
        self._counts: dict[str, int] = {}

    async def deltas(self) -> AsyncIterator[str]:
        try:
            async for event in self._stream:
                text = self._on_event(event)
                if text:
                    yield text
        except anthropic.AnthropicError as exc:
            raise convert_error(exc) from exc
        except (httpx2.TransportError, OSError) as exc:
            raise faults.cut("anthropic") from exc

    def _on_event(self, event: Any) -> str | None:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            return delta.text if delta.type == "text_delta" else None
        if kind == "message_start":
            self._count(event.message.usage)
        elif kind == "message_delta":
            self._stop_reason = event.delta.stop_reason or self._stop_reason
            self._count(event.usage)
            # Only message_delta carries the real output count (message_start's is a
            # placeholder); before it, a cut or cancelled stream is estimated.
            self.usage = Usage(self._input, self._output, self._cached)
        elif kind == "message_stop":
            # The terminal event: only now did the provider end the stream itself.
            self.finish_reason = FINISH_REASONS.get(self._stop_reason or "end_turn", "stop")
        return None

    def _count(self, usage: Any) -> None:
        """message_start and message_delta carry cumulative counts; keep the latest of each."""
        if usage is None:
            return
        for name in (
            "input_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "output_tokens",
        ):
            value = getattr(usage, name, None)
            if value is not None:
                self._counts[name] = value
        counts = self._counts
        self._cached = counts.get("cache_read_input_tokens", 0)
        # Anthropic's input_tokens exclude cache reads and writes; ours count every input token.
        self._input = (
            counts.get("input_tokens", 0)
            + self._cached
            + counts.get("cache_creation_input_tokens", 0)
        )
        self._output = counts.get("output_tokens", 0)

    async def aclose(self) -> None:
        await self._stream.close()


class AnthropicProvider(Provider):
    name = "anthropic"

    def __init__(self, api_key: str | None, base_url: str | None, timeout_s: float) -> None:
        # Retries are ours (engine.tasks.retries), so the SDK makes exactly one request.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or "unset",
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
        )

    async def open(self, request: ProviderRequest) -> ProviderStream:
        client = self._client
        if request.api_key is not None:
            client = client.with_options(api_key=request.api_key)
        try:
            stream = await client.messages.create(**build_params(request))
        except anthropic.AnthropicError as exc:
            raise convert_error(exc) from exc
        return AnthropicStream(stream)

    def price(self, model: str, usage: Usage) -> Decimal | None:
        return catalog_price("anthropic", model, usage)

    async def close(self) -> None:
        await self._client.close()
