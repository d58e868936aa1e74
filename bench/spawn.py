"""`--spawn`: start `promptrelay serve` on embedded servers in a temporary data directory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Spawned:
    url: str
    token: str
    pid: int
    log_path: Path
    env: dict[str, str]  # the spawned server's environment (its data directory)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "server.cli", *args]


def _wait_listening(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "promptrelay listening on" in line:
            return line.split("listening on", 1)[1].split()[0]
    raise RuntimeError("the spawned server did not start:\n" + "".join(lines[-20:]))


def create_key(env: dict[str, str], tier: str, user: str = "bench@localhost") -> str:
    out = subprocess.run(
        _cli("keys", "create", "--user", user, "--tier", tier, "--name", "bench"),
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def stop_process(proc: subprocess.Popen[str], grace_s: float) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; the process is reaped and its pipe closed."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def spawned_server(
    env_overrides: dict[str, str] | None = None, server_keys: bool = False
) -> Iterator[Spawned]:
    """A fresh server on embedded Postgres and Redis; stopped (SIGTERM) and removed after.

    The bench key's tier has no daily task quota, so a long bench is not cut short by one:
    `byok`, or with `server_keys` (tasks call a provider with the server's own key, which a
    byok task never does) `premium` with its daily quota lifted."""
    tier = "premium" if server_keys else "byok"
    with tempfile.TemporaryDirectory(prefix="ps-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            {
                "PROMPTRELAY_DATA_DIR": str(Path(tmp) / "data"),
                "PYTHONUNBUFFERED": "1",
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "WARNING",
                # one bench key drives every socket and task: lift the per-user caps
                # (docs/tenancy.md), which would otherwise refuse most of the load
                "MAX_CONCURRENT_TASKS": "1000000",
                "MAX_CONNECTIONS_PER_USER": "1000000",
                "MAX_EVENTS_PER_SECOND": "1000000",
                # every bench client comes from one address, thousands connecting at once
                "MAX_PENDING_HANDSHAKES_PER_ADDRESS": "1000000",
                "MAX_PENDING_HANDSHAKES": "1000000",
                "MAX_HTTP_REQUESTS_PER_MINUTE": "0",
                "MAX_HTTP_REQUESTS_PER_MINUTE_PER_ADDRESS": "0",
                "QUOTA_PREMIUM_DAILY": "-1",
                **(env_overrides or {}),
            }
        )
        log_path = Path(tmp) / "server.log"
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                _cli("serve", "--port", str(_free_port())),
                env=env,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
            )
            try:
                url = _wait_listening(proc)
                token = create_key(env, tier)
                yield Spawned(url=url, token=token, pid=proc.pid, log_path=log_path, env=env)
            finally:
                stop_process(proc, 60.0)
