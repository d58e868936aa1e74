"""A deterministic simulator of a streaming model, for demos, tests and load tests.

It calls nothing. The output is a fixed function of the input messages; tokens arrive at
`settings.tokens_per_second` (0 = as fast as possible) and `settings.max_tokens` of them
(default 64). Usage: input = words in the prompt plus 1,600 per image (it takes images and
counts them), output = tokens emitted. Cost 0.

Tool calls: with `tools` and `settings.simulate_tool_calls` = N (1-8), an answer whose last
input message is not a tool result asks for N calls at once (the named tool of
`tool_choice`, else the tools in turn; none with `tool_choice: "none"`), each call's
arguments `{"input": "<two words>"}` streamed in three pieces, and finishes `tool_calls`.
An answer after tool results is text, as without tools.

Reasoning: with `settings.reasoning`, the answer (text or calls) starts with
`REASONING_WORDS[effort]` words of reasoning (medium when no effort is set; at most
`budget_tokens`), two words a piece, paced like the text. They count as output tokens and
as reasoning tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from engine.providers.base import Provider, ProviderRequest, ProviderStream, count_words
from engine.providers.parts import IMAGE_TOKENS, image_count
from engine.providers.reasoning import ReasoningDelta, reasoning_setting
from engine.providers.toolcalls import Delta, ToolCallDelta
from engine.usage import Usage

WORDS = (
    "stream token relay socket chunk model prompt river signal packet window lantern "
    "harbor orbit meadow copper velvet summit cipher echo ember falcon glacier marble "
    "nimbus quartz willow zephyr beacon canyon delta fable"
).split()

DEFAULT_MAX_TOKENS = 64
DEFAULT_TOKENS_PER_SECOND = 50.0
_YIELD_EVERY = 32  # at full speed, give the event loop a turn this often
REASONING_WORDS = {"low": 4, "medium": 8, "high": 16}  # words of reasoning by effort
_REASONING_PIECE = 2  # words per reasoning piece


def simulated_token(seed: int, index: int) -> str:
    """Token `index` of the output for `seed`: a word and a space."""
    return WORDS[(seed + index * 7) % len(WORDS)] + " "


class SimulatedStream(ProviderStream):
    def __init__(self, request: ProviderRequest) -> None:
        settings = request.settings
        self._count = int(settings.get("max_tokens") or DEFAULT_MAX_TOKENS)
        tps = settings.get("tokens_per_second")
        self._tps = DEFAULT_TOKENS_PER_SECOND if tps is None else float(tps)
        digest = hashlib.sha256(repr(request.messages).encode()).digest()
        self._seed = int.from_bytes(digest[:4], "big")
        self._input = count_words(request.messages) + IMAGE_TOKENS * image_count(request.messages)
        self._emitted = 0
        self._thought = 0  # reasoning words emitted
        self.usage = Usage(self._input, 0)
        self._calls = simulated_calls(request, self._seed)
        self._reasoning = simulated_reasoning(request, self._seed)

    def _tally(self, output: int) -> None:
        self.usage = Usage(self._input, output + self._thought, reasoning_tokens=self._thought)

    async def deltas(self) -> AsyncIterator[Delta]:
        for piece in self._reasoning:
            await asyncio.sleep(_REASONING_PIECE / self._tps if self._tps > 0 else 0)
            self._thought += len(piece.text.split())
            self._tally(0)
            yield piece
        if self._calls:
            for delta in self._calls:
                await asyncio.sleep(0)
                yield delta
            self._tally(len(self._calls))
            self.finish_reason = "tool_calls"
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        while self._emitted < self._count:
            if self._tps > 0:
                # Sleep until the next token is due, then hand over every token that is due.
                due = start + (self._emitted + 1) / self._tps
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                ready = int((loop.time() - start) * self._tps)
                n = max(1, min(ready, self._count) - self._emitted)
            else:
                n = min(_YIELD_EVERY, self._count - self._emitted)
                await asyncio.sleep(0)
            text = "".join(simulated_token(self._seed, self._emitted + i) for i in range(n))
            self._emitted += n
            self._tally(self._emitted)
            yield text
        self.finish_reason = "stop"

    async def aclose(self) -> None:
        self._count = self._emitted


def simulated_calls(request: ProviderRequest, seed: int) -> list[ToolCallDelta]:
    """The pieces of the calls the simulator asks for (none unless asked: module docstring)."""
    settings = request.settings
    tools: list[dict[str, Any]] = settings.get("tools") or []
    count = int(settings.get("simulate_tool_calls") or 0)
    choice = settings.get("tool_choice")
    last = request.messages[-1]["role"] if request.messages else None
    if not tools or count <= 0 or choice == "none" or last == "tool":
        return []
    names = [choice["name"]] if isinstance(choice, dict) else [t["name"] for t in tools]
    pieces: list[ToolCallDelta] = []
    for index in range(count):
        words = f"{simulated_token(seed, 2 * index)}{simulated_token(seed, 2 * index + 1)}"
        text = json.dumps({"input": words.strip()})
        call_id = f"call_sim_{seed:08x}_{index}"
        third = max(1, len(text) // 3)
        fragments = [text[:third], text[third : 2 * third], text[2 * third :]]
        pieces.append(ToolCallDelta(index, call_id, names[index % len(names)], fragments[0]))
        pieces.extend(ToolCallDelta(index, None, None, f) for f in fragments[1:])
    return pieces


def simulated_reasoning(request: ProviderRequest, seed: int) -> list[ReasoningDelta]:
    """The reasoning pieces the simulator streams before its answer (none unless asked)."""
    setting = reasoning_setting(request.settings)
    if setting is None:
        return []
    count = REASONING_WORDS[str(setting.get("effort") or "medium")]
    if setting.get("budget_tokens") is not None:
        count = max(1, min(count, int(setting["budget_tokens"])))
    words = [simulated_token(seed + 3, i) for i in range(count)]
    return [
        ReasoningDelta("".join(words[i : i + _REASONING_PIECE]))
        for i in range(0, count, _REASONING_PIECE)
    ]


class SimulatedProvider(Provider):
    name = "simulated"
    needs_key = False
    listed_extra = ("demo",)  # any name works; this one stands for them in `GET /v1/models`

    def check_reasoning(
        self, reasoning: dict[str, Any], settings: dict[str, Any], model: str
    ) -> None:
        """Every model of the simulator reasons (module docstring)."""

    async def open(self, request: ProviderRequest) -> ProviderStream:
        return SimulatedStream(request)

    def price(self, model: str, usage: Usage) -> Decimal | None:
        return Decimal(0)
