"""`python -m bench.fanout`: what one user's fan-out costs another user's first chunk.

User A runs `--tasks` long tasks (`--rate` tokens/s, 20 s each), each followed by
`--watchers` of A's sockets; user B meanwhile runs short tasks one after another and
measures each one's time to first chunk. The same probes on an idle server first give
the baseline. The server is spawned on embedded Postgres and Redis with
`MAX_WATCHERS_PER_TASK` set to `--cap` (the default is the server's default). Prints the
figures; exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import socketio

from bench.spawn import create_key, spawned_server

PROBE = {
    "messages": [{"role": "user", "content": "probe"}],
    "model": "simulated/probe",
    "settings": {"max_tokens": 4, "tokens_per_second": 0},
}


async def _connect(url: str, token: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=30)
    return sio


async def _probes(url: str, token: str, count: int) -> list[float]:
    """Time from sending `execute` to the first chunk, in ms, for `count` tasks in a row."""
    sio = await _connect(url, token)
    first: asyncio.Future[float] | None = None

    @sio.on("task_chunk")  # type: ignore[untyped-decorator]
    async def on_chunk(_data: dict[str, Any]) -> None:
        if first is not None and not first.done():
            first.set_result(time.perf_counter())

    out = []
    try:
        for _ in range(count):
            first = asyncio.get_running_loop().create_future()
            sent = time.perf_counter()
            ack = await sio.call("execute", PROBE, timeout=30)
            if not ack.get("ok"):
                raise RuntimeError(f"probe refused: {ack}")
            out.append((await asyncio.wait_for(first, 30) - sent) * 1000)
            await asyncio.sleep(0.05)
    finally:
        await sio.disconnect()
    return out


async def _fan_out(
    url: str, token: str, tasks: int, watchers: int, rate: int
) -> list[socketio.AsyncClient]:
    """A's tasks, each followed by `watchers` sockets of A (the one that started it too)."""
    socks = [await _connect(url, token) for _ in range(watchers)]
    body = {
        "messages": [{"role": "user", "content": "a long answer"}],
        "model": "simulated/fanout",
        "settings": {"max_tokens": 20 * rate, "tokens_per_second": rate},
    }
    for i in range(tasks):
        ack = await socks[i % watchers].call("execute", body, timeout=30)
        if not ack.get("ok"):
            raise RuntimeError(f"fan-out task refused: {ack}")
        for sock in socks:
            if sock is not socks[i % watchers]:
                sub = await sock.call("subscribe", {"task_id": ack["task_id"]}, timeout=30)
                if not sub.get("ok"):
                    raise RuntimeError(f"subscribe refused: {sub}")
    return socks


def _figures(ms: list[float]) -> str:
    ordered = sorted(ms)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"p50 {statistics.median(ordered):.1f} ms, p90 {p90:.1f} ms, max {ordered[-1]:.1f} ms"


async def _run(args: argparse.Namespace) -> None:
    overrides = {"MAX_WATCHERS_PER_TASK": str(args.cap)} if args.cap else {}
    with spawned_server(overrides) as server:
        other = create_key(server.env, "byok", user="other@localhost")
        quiet = await _probes(server.url, other, args.probes)
        socks = await _fan_out(server.url, server.token, args.tasks, args.watchers, args.rate)
        await asyncio.sleep(1.0)  # every stream under way
        loaded = await _probes(server.url, other, args.probes)
        for sock in socks:
            await sock.disconnect()
    print(
        f"fan-out: {args.tasks} tasks of one user at {args.rate} tokens/s,"
        f" {args.watchers} sockets each"
    )
    print(f"  another user's first chunk, idle server: {_figures(quiet)}")
    print(f"  another user's first chunk, during the fan-out: {_figures(loaded)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--watchers", type=int, default=16)
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--rate", type=int, default=200, help="tokens/s of each fan-out task")
    parser.add_argument("--cap", type=int, default=0, help="MAX_WATCHERS_PER_TASK (0: default)")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
