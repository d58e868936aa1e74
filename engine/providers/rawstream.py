"""A provider stream read as raw SSE bytes: the SDK made the request, `sse` decodes the body."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import httpx2

from engine.errors import ProviderUnavailable
from engine.providers import faults
from engine.providers.base import ProviderStream
from engine.providers.sse import Out, SSEDecoder
from engine.providers.toolcalls import Delta
from engine.usage import Usage


class EventReader(Protocol):
    """One provider's event decoder (`sse.OpenAIEvents` and its siblings)."""

    finish_reason: str | None
    usage: Usage | None
    done: bool
    refusal: str | None

    def on_event(self, event: str | None, data: bytes) -> Out: ...


class RawSSEStream(ProviderStream):
    """Text deltas and tool-call pieces from an SSE body; `aclose` closes the response.

    After the provider's terminal event the rest of the body is still read (a few bytes), so
    that an HTTP/1.1 connection goes back to the pool instead of being closed.
    """

    def __init__(
        self,
        provider: str,
        body: AsyncIterator[bytes],
        reader: EventReader,
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self._provider = provider
        self._body = body
        self._reader = reader
        self._close = close

    # What the reader saw so far, also when iteration was cut short or cancelled.
    @property
    def finish_reason(self) -> str | None:
        return self._reader.finish_reason

    @finish_reason.setter
    def finish_reason(self, value: str | None) -> None:
        self._reader.finish_reason = value

    @property
    def usage(self) -> Usage | None:
        return self._reader.usage

    @usage.setter
    def usage(self, value: Usage | None) -> None:
        self._reader.usage = value

    @property
    def refusal(self) -> str | None:
        return self._reader.refusal

    @refusal.setter
    def refusal(self, value: str | None) -> None:
        self._reader.refusal = value

    @property
    def thinking_blocks(self) -> list[dict[str, Any]] | None:
        blocks = getattr(self._reader, "thinking_blocks", None)
        return list(blocks) if blocks else None

    @thinking_blocks.setter
    def thinking_blocks(self, value: list[dict[str, Any]] | None) -> None:
        if hasattr(self._reader, "thinking_blocks"):
            self._reader.thinking_blocks = list(value or [])

    async def deltas(self) -> AsyncIterator[Delta]:
        reader = self._reader
        decoder = SSEDecoder()
        try:
            async for chunk in self._body:
                if reader.done:
                    continue
                for event, data in decoder.feed(chunk):
                    for delta in _pieces(reader.on_event(event, data)):
                        yield delta
                    if reader.done:
                        break
            if not reader.done:
                for event, data in decoder.close():
                    for delta in _pieces(reader.on_event(event, data)):
                        yield delta
        except httpx2.TimeoutException as exc:
            raise ProviderUnavailable(f"{self._provider} did not answer in time") from exc
        except (httpx2.TransportError, httpx2.StreamError, aiohttp.ClientError, OSError) as exc:
            raise faults.cut(self._provider) from exc

    async def aclose(self) -> None:
        await self._close()


def _pieces(out: Out) -> list[Delta]:
    if isinstance(out, str):
        return [out]
    return out or []
