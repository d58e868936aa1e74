"""The baseline of W4: a client that streams from an OpenAI-compatible server directly.

    python -m bench.direct --base-url URL --model MODEL --concurrency 200 --tasks 2000

Same SDK and the same streaming request the `openai/` adapter makes; prints delivered
tokens/s and this process's CPU seconds per 1,000 tokens, to set beside the relay's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

from openai import AsyncOpenAI


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_direct(args: argparse.Namespace) -> dict[str, float]:
    client = AsyncOpenAI(base_url=args.base_url, api_key="bench", max_retries=0)
    left = args.tasks
    tokens = 0

    async def slot() -> None:
        nonlocal left, tokens
        while left > 0:
            left -= 1
            stream = await client.chat.completions.create(
                model=args.model,
                messages=[{"role": "user", "content": "bench"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    tokens += chunk.usage.completion_tokens

    cpu0, t0 = _cpu_s(), time.monotonic()
    await asyncio.gather(*(slot() for _ in range(args.concurrency)))
    cpu, elapsed = _cpu_s() - cpu0, time.monotonic() - t0
    await client.close()
    return {
        "tasks": args.tasks,
        "tokens": tokens,
        "elapsed_s": round(elapsed, 3),
        "tokens_per_s": round(tokens / elapsed, 1),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1k_tokens": round(cpu / tokens * 1000, 4) if tokens else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", default="fake:tokens=256")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=2000)
    print(json.dumps(asyncio.run(run_direct(parser.parse_args()))))


if __name__ == "__main__":
    main()
