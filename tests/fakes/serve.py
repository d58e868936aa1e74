"""Run one fake provider server on its own (for benchmarks): prints its base URL, runs until
stopped (SIGTERM or SIGINT).

python -m tests.fakes.serve --provider openai|anthropic|google [--port N]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from server.process.loop import run_loop
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import FakeServerBase
from tests.fakes.google_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI

FAKES: dict[str, type[FakeServerBase]] = {
    "openai": FakeOpenAI,
    "anthropic": FakeAnthropic,
    "google": FakeGemini,
}


async def serve(provider: str, port: int) -> None:
    fake = FAKES[provider]()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(await fake.start(port), flush=True)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=sorted(FAKES), default="openai")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    run_loop(serve(args.provider, args.port))


if __name__ == "__main__":
    main()
