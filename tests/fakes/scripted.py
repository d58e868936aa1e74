"""What the Anthropic and Gemini fakes share: an aiohttp server on an ephemeral port, the
per-test script read from the model name, and counting of client disconnects.

A model name is a base name followed by colon-separated ``key=value`` options, as in the
OpenAI fake (``"fake:tokens=5:delay_ms=10"``):

    tokens=N       output tokens (default 8); token i is ``f"tok{i} "``
    delay_ms=D     sleep D ms before each token (a stall: a large D)
    usage=0|1      report usage (default 1)
    cached=N       report N of the input tokens as served from the prompt cache
    cut_after=K    after K tokens, drop the TCP connection (no terminal event)
    error_after=K  after K tokens, send the provider's in-stream error (Anthropic: overloaded)
    status=CODE    answer CODE at once with the provider's error JSON
    retry_after=S  the ``retry-after`` header of a 429 (default 0)
    fail_first=N   the first N requests with this exact model name fail
    fail_with=CODE the status of those failures (default 500; 429 adds ``retry_after``)
    finish=REASON  the provider's own finish reason (default: its normal stop)
    tools=N, bad_args=1  tool calls (tests/fakes/tools.py), streamed after the text tokens
    body=NAME      answer the fake's stored body `bodies[NAME]` as it is (a recorded stream)
    think=N        with thinking asked for: N thinking tokens (``"think{i} "``; default 3)
    redacted=1     with thinking asked for: a redacted_thinking block too (Anthropic)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServerBase
from tests.fakes.openai_server import parse_model, token_text

__all__ = ["FakeServer", "Script", "token_text"]


@dataclass(frozen=True)
class Script:
    tokens: int = 8
    delay_s: float = 0.0
    usage: bool = True
    cached: int = 0
    cut_after: int | None = None
    error_after: int | None = None
    status: int | None = None
    retry_after: str = "0"
    fail_first: int = 0
    fail_with: int = 500
    finish: str | None = None
    tools: int = 0
    bad_args: bool = False
    think: int = 3
    redacted: bool = False

    @classmethod
    def parse(cls, model: str) -> Script:
        opts = parse_model(model)
        number = {k: int(v) for k, v in opts.items() if k not in ("finish", "retry_after", "body")}
        return cls(
            tokens=number.get("tokens", 8),
            delay_s=number.get("delay_ms", 0) / 1000,
            usage=number.get("usage", 1) != 0,
            cached=number.get("cached", 0),
            cut_after=number.get("cut_after"),
            error_after=number.get("error_after"),
            status=number.get("status"),
            retry_after=opts.get("retry_after", "0"),
            fail_first=number.get("fail_first", 0),
            fail_with=number.get("fail_with", 500),
            finish=opts.get("finish"),
            tools=number.get("tools", 0),
            bad_args=number.get("bad_args", 0) == 1,
            think=number.get("think", 3),
            redacted=number.get("redacted", 0) == 1,
        )


def count_words(texts: list[str]) -> int:
    return sum(len(t.split()) for t in texts)


class FakeServer(FakeServerBase):
    """Base of the Anthropic and Gemini fakes; subclasses add routes in `routes()`."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict[str, str]] = []
        self._fail_counts: defaultdict[str, int] = defaultdict(int)

    def record(self, request: web.Request, body: dict[str, Any]) -> None:
        self.requests.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})

    def fails_now(self, model: str, script: Script) -> bool:
        """True while this model name is inside its `fail_first` budget."""
        if not script.fail_first:
            return False
        self._fail_counts[model] += 1
        return self._fail_counts[model] <= script.fail_first

    def disconnected(self) -> None:
        if not self._stopping:
            self.disconnects += 1
            self._disconnect_event.set()

    @staticmethod
    def cut(request: web.Request) -> None:
        """Flush what was written, then drop the TCP connection."""
        if request.transport is not None:
            request.transport.close()
