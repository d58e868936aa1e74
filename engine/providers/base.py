"""The adapter interface every provider implements."""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from engine.errors import InvalidRequest
from engine.providers.parts import text_of
from engine.providers.reasoning import reasoning_setting, refuse
from engine.providers.toolcalls import Delta
from engine.usage import Usage

# The request settings that reach a provider's wire (the others are ours: fallbacks, pacing).
SAMPLING = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


@dataclass(frozen=True)
class ProviderRequest:
    """What one model call sends: the model name without its provider prefix."""

    model: str
    messages: list[dict[str, Any]]  # neutral messages (engine.providers.toolcalls)
    settings: dict[str, Any] = field(default_factory=dict)  # with `tools`, `tool_choice`
    # A bring-your-own key for this call only; never printed (repr=False), never stored.
    api_key: str | None = field(default=None, repr=False, compare=False)


class ProviderStream(abc.ABC):
    """An open streaming call: iterate it for text deltas and tool-call pieces
    (`ToolCallDelta`); close it to end the upstream request.

    After iteration ends, `finish_reason` is set when the provider ended the stream itself
    (None means the stream was cut), `usage` when the provider reported it, and `refusal`
    when the provider declined to answer (its refusal message, or its reason when it gives
    no message; `finish_reason` is then `content_filter`).
    """

    finish_reason: str | None = None
    usage: Usage | None = None
    refusal: str | None = None
    # What the provider wants back with this answer's tool calls in a continuation
    # (Anthropic's signed thinking blocks), opaque to the engine: kept on the stored turn.
    thinking_blocks: list[dict[str, Any]] | None = None

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self.deltas()

    @abc.abstractmethod
    def deltas(self) -> AsyncIterator[Delta]:
        """Yield text deltas and tool-call pieces as they arrive."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the upstream connection (idempotent)."""

    async def __aenter__(self) -> ProviderStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Provider(abc.ABC):
    """One provider. `open` starts a streaming call; errors are raised as ours.

    `model_pattern` is what a model name must match before any request is built: a name
    that travels in a JSON body may hold `/` and `:` (fine-tunes, gateways' `org/model`
    names); one that becomes part of a URL (Gemini) is held to a single safe path segment.
    """

    name: str
    needs_key = True  # False for providers that call nothing (the simulator)
    model_pattern: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+~=-]{0,199}")
    model_rule: ClassVar[str] = "up to 200 of letters, digits and . _ : / @ + ~ = -"
    # What `GET /v1/models` lists: the catalog's models of this provider whose names start
    # with one of these (empty: all of them), and names listed besides the catalog.
    listed_prefixes: ClassVar[tuple[str, ...]] = ()
    listed_extra: ClassVar[tuple[str, ...]] = ()
    # Sampling settings (of `SAMPLING`) the provider's API has no place for: refused, never
    # silently dropped.
    unsupported: ClassVar[tuple[str, ...]] = ()
    # `response_format` types it has no mechanism for (`json_object`, `json_schema`).
    unsupported_formats: ClassVar[tuple[str, ...]] = ()

    def check_settings(self, settings: dict[str, Any], model: str = "") -> None:
        """Refuse (`invalid_request`) a set setting this provider (or `model`) does not take."""
        for key in self.unsupported:
            if settings.get(key) is not None:
                raise InvalidRequest(
                    f"{self.name} does not support the setting {key}",
                    details={"errors": [{"field": f"settings.{key}", "message": "unsupported"}]},
                )
        fmt = settings.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind in self.unsupported_formats:
            raise InvalidRequest(
                f"{self.name} does not support the setting response_format {kind}",
                details={
                    "errors": [{"field": "settings.response_format", "message": "unsupported"}]
                },
            )
        reasoning = reasoning_setting(settings)
        if reasoning is not None:
            self.check_reasoning(reasoning, settings, model)

    def check_reasoning(
        self, reasoning: dict[str, Any], settings: dict[str, Any], model: str
    ) -> None:
        """Refuse the parts of `settings.reasoning` this provider or model cannot take
        (`engine.providers.reasoning.refuse`). By default a provider takes none of it."""
        raise refuse(self.name, "reasoning", "it has no reasoning setting")

    @abc.abstractmethod
    async def open(self, request: ProviderRequest) -> ProviderStream:
        """Start the call; raises ProviderFault subclasses before the stream starts."""

    def price(self, model: str, usage: Usage) -> Decimal | None:
        """Cost in USD of `usage` on `model`, or None when the price is unknown."""
        return None

    async def close(self) -> None:  # noqa: B027 - most adapters hold nothing to release
        """Release clients and connections."""


def count_words(messages: list[dict[str, Any]]) -> int:
    """Whitespace-separated words over every message's text."""
    return sum(len(text_of(m.get("content")).split()) for m in messages)


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for when a provider reports none."""
    return (len(text) + 3) // 4


KEYED_CLIENTS = 256  # users' own keys whose SDK client is kept (the oldest goes first)
C = TypeVar("C")


def keyed_client(cache: dict[str, C], api_key: str, make: Callable[[], C]) -> C:
    """An SDK client for a user's own key, made once (`with_options` copies the whole client
    on every call); at most KEYED_CLIENTS are kept."""
    found = cache.get(api_key)
    if found is None:
        if len(cache) >= KEYED_CLIENTS:
            del cache[next(iter(cache))]
        found = cache[api_key] = make()
    return found
