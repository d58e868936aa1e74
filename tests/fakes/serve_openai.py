"""Run the fake OpenAI server on its own (for benchmarks): prints its base URL, runs until killed.

python -m tests.fakes.serve_openai
"""

from __future__ import annotations

import asyncio

from tests.fakes.openai_server import FakeOpenAI


async def main() -> None:
    fake = FakeOpenAI()
    print(await fake.start(), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
