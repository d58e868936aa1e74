"""The baseline: a client that streams from a provider (or a fake of one) directly.

    python -m bench.direct --provider openai --base-url URL --model MODEL \\
        --concurrency 200 --tasks 2000

It makes the same streaming request promptrelay's adapter for that provider makes (through
`engine.providers`, so the same SDK request and the same stream reading), keeps
`--concurrency` streams in flight, and prints delivered tokens/s, time to first token and
this process's CPU seconds per 1,000 tokens, to set beside the relay's figures.
`promptrelay bench --upstream ...` runs it in the same run as the relay bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from bench.stats import percentile
from engine.errors import PromptrelayError
from engine.providers.base import ProviderRequest
from engine.providers.registry import ProviderRegistry
from engine.settings import Settings

PROGRESS_EVERY_S = 0.5
Progress = Callable[[int, int, int], None]  # (streams done, tokens, errors)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def provider_settings(provider: str, base_url: str) -> Settings:
    """Settings whose `provider` adapter calls `base_url` with a throwaway key."""
    fields = {
        "openai": ("openai_api_key", "openai_base_url"),
        "anthropic": ("anthropic_api_key", "anthropic_base_url"),
        "google": ("gemini_api_key", "google_genai_base_url"),
    }[provider]
    return Settings().model_copy(update={fields[0]: SecretStr("bench"), fields[1]: base_url})


class DirectRun:
    """`concurrency` slots that each open, read and close streams until the budget is spent."""

    def __init__(self, args: Any, progress: Progress | None) -> None:
        self.args = args
        self.progress = progress
        self.left: int | None = getattr(args, "tasks", None)
        self.deadline = time.monotonic() + (getattr(args, "duration", None) or float("inf"))
        self.done = self.tokens = 0
        self.errors: Counter[str] = Counter()
        self.ttft: list[float] = []
        self.first_sent = float("inf")
        self.last_done = 0.0

    def _take(self) -> bool:
        if time.monotonic() >= self.deadline or self.left == 0:
            return False
        if self.left is not None:
            self.left -= 1
        return True

    async def _one(self, provider: Any, request: ProviderRequest) -> None:
        sent = time.monotonic()
        self.first_sent = min(self.first_sent, sent)
        first: float | None = None
        deltas = 0
        try:
            async with await provider.open(request) as stream:
                async for _ in stream:
                    if first is None:
                        first = time.monotonic() - sent
                    deltas += 1
            if stream.finish_reason is None:
                raise PromptrelayError("the stream ended before it finished", code="cut")
        except PromptrelayError as exc:
            self.errors[exc.code] += 1
            return
        self.done += 1
        self.last_done = max(self.last_done, time.monotonic())
        self.tokens += stream.usage.output_tokens if stream.usage else deltas
        if first is not None:
            self.ttft.append(first)

    async def _slot(self, provider: Any, request: ProviderRequest) -> None:
        while self._take():
            await self._one(provider, request)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            if self.progress is not None:
                self.progress(self.done, self.tokens, sum(self.errors.values()))

    async def run(self) -> dict[str, Any]:
        args = self.args
        provider_name = getattr(args, "provider", "openai")
        registry = ProviderRegistry.from_settings(provider_settings(provider_name, args.base_url))
        provider, model = registry.resolve(f"{provider_name}/{args.model}")
        max_tokens = getattr(args, "max_tokens", None)
        request = ProviderRequest(
            model=model,
            messages=[{"role": "user", "content": "bench"}],
            settings={"max_tokens": max_tokens} if max_tokens else {},
        )
        reporter = asyncio.create_task(self._report())
        cpu0, t0 = _cpu_s(), time.monotonic()
        try:
            await asyncio.gather(*(self._slot(provider, request) for _ in range(args.concurrency)))
        finally:
            reporter.cancel()
            await registry.close()
        cpu, wall = _cpu_s() - cpu0, time.monotonic() - t0
        if self.progress is not None:
            self.progress(self.done, self.tokens, sum(self.errors.values()))
        return self._result(cpu, wall)

    def _result(self, cpu: float, wall: float) -> dict[str, Any]:
        elapsed = max(self.last_done - self.first_sent, 1e-9) if self.done else wall
        tokens = self.tokens

        def ms(q: int) -> float | None:
            value = percentile(self.ttft, q)
            return None if value is None else round(value * 1000, 2)

        return {
            "tasks": self.done + sum(self.errors.values()),
            "completed": self.done,
            "errors": dict(self.errors),
            "tokens": tokens,
            "elapsed_s": round(elapsed, 3),
            "tokens_per_s": round(tokens / elapsed, 1) if self.done else 0.0,
            "ttft_ms": {"p50": ms(50), "p99": ms(99)},
            "cpu_s": round(cpu, 2),
            "cpu_s_per_1k_tokens": round(cpu / tokens * 1000, 4) if tokens else 0.0,
        }


async def run_direct(args: Any, progress: Progress | None = None) -> dict[str, Any]:
    """Run the direct client as `args` say (`base_url`, `model`, `concurrency`, `tasks` and
    optionally `provider`, `duration`, `max_tokens`); returns its figures."""
    return await DirectRun(args, progress).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=["openai", "anthropic", "google"], default="openai")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", default="fake~tokens=256")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=2000)
    from server.process.loop import run_loop

    print(json.dumps(run_loop(run_direct(parser.parse_args()))))


if __name__ == "__main__":
    main()
