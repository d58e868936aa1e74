"""Google Gemini through the official `google-genai` SDK (the maintained successor of the
deprecated `google-generativeai`): `generate_content_stream`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from engine.errors import ProviderFault
from engine.providers import faults
from engine.providers.base import Provider, ProviderRequest, ProviderStream, Usage
from engine.providers.pricing import catalog_price

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "UNEXPECTED_TOOL_CALL": "tool_calls",
    "MALFORMED_FUNCTION_CALL": "tool_calls",
}
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError)


def convert_error(exc: Exception) -> ProviderFault:
    """Our error for an SDK or transport error; never the SDK's text."""
    if isinstance(exc, genai_errors.APIError):
        headers = getattr(exc.response, "headers", None)
        return faults.from_status("google", int(exc.code or 500), headers)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return faults.unreachable("google")
    return faults.cut("google")


def build_contents(messages: list[dict[str, str]]) -> tuple[str | None, list[types.Content]]:
    """Gemini roles: `user` and `model` contents, system prompts as the system instruction."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    contents = [
        types.Content(
            role="model" if m["role"] == "assistant" else "user",
            parts=[types.Part(text=m["content"])],
        )
        for m in messages
        if m["role"] != "system"
    ]
    return ("\n\n".join(system) if system else None), contents


def build_config(request: ProviderRequest, system: str | None) -> types.GenerateContentConfig:
    settings = request.settings
    return types.GenerateContentConfig(
        system_instruction=system,
        temperature=settings.get("temperature"),
        top_p=settings.get("top_p"),
        max_output_tokens=settings.get("max_tokens"),
        stop_sequences=settings.get("stop"),
        seed=settings.get("seed"),
        presence_penalty=settings.get("presence_penalty"),
        frequency_penalty=settings.get("frequency_penalty"),
    )


def _usage(meta: Any) -> Usage:
    prompt = meta.prompt_token_count or 0
    output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return Usage(prompt, output, meta.cached_content_token_count or 0)


class GoogleStream(ProviderStream):
    def __init__(
        self, responses: AsyncIterator[types.GenerateContentResponse], owned: genai.Client | None
    ) -> None:
        self._responses = responses
        self._owned = owned  # a per-call client (a user's own key), closed with the stream
        self._tool_call = False

    async def deltas(self) -> AsyncIterator[str]:
        try:
            async for response in self._responses:
                text = self._on_response(response)
                if text:
                    yield text
        except genai_errors.APIError as exc:
            raise convert_error(exc) from exc
        except _TRANSPORT_ERRORS as exc:
            raise convert_error(exc) from exc

    def _on_response(self, response: types.GenerateContentResponse) -> str:
        if response.usage_metadata is not None:
            self.usage = _usage(response.usage_metadata)
        texts: list[str] = []
        for candidate in (response.candidates or [])[:1]:
            parts = candidate.content.parts if candidate.content else None
            texts.extend(p.text for p in parts or [] if p.text and not p.thought)
            if any(p.function_call for p in parts or []):
                self._tool_call = True
            if candidate.finish_reason is not None:
                reason = str(getattr(candidate.finish_reason, "value", candidate.finish_reason))
                mapped = FINISH_REASONS.get(reason, "stop")
                self.finish_reason = "tool_calls" if self._tool_call else mapped
        return "".join(texts)

    async def aclose(self) -> None:
        closer = getattr(self._responses, "aclose", None)
        try:
            if closer is not None:
                await closer()
        finally:
            if self._owned is not None:
                owned, self._owned = self._owned, None
                await owned.aio.aclose()


class GoogleProvider(Provider):
    name = "google"

    def __init__(self, api_key: str | None, base_url: str | None, timeout_s: float) -> None:
        self._base_url = base_url
        self._timeout_ms = int(timeout_s * 1000)
        self._client = self._new_client(api_key or "unset")

    def _new_client(self, api_key: str) -> genai.Client:
        # One attempt per call: retries are ours (engine.tasks.retries).
        options = types.HttpOptions(
            base_url=self._base_url,
            timeout=self._timeout_ms,
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        return genai.Client(api_key=api_key, http_options=options)

    async def open(self, request: ProviderRequest) -> ProviderStream:
        owned = None if request.api_key is None else self._new_client(request.api_key)
        client = owned or self._client
        system, contents = build_contents(request.messages)
        try:
            responses = await client.aio.models.generate_content_stream(
                model=request.model,
                contents=contents,
                config=build_config(request, system),
            )
        except (genai_errors.APIError, *_TRANSPORT_ERRORS) as exc:
            if owned is not None:
                await owned.aio.aclose()
            raise convert_error(exc) from exc
        return GoogleStream(responses, owned)

    def price(self, model: str, usage: Usage) -> Decimal | None:
        return catalog_price("google", model, usage)

    async def close(self) -> None:
        await self._client.aio.aclose()
