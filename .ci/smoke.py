"""End-to-end checks of an installed `promptrelay` (standard library only).

python .ci/smoke.py serve PROMPTRELAY_EXECUTABLE
    starts `promptrelay serve` on its embedded default (a fresh PROMPTRELAY_DATA_DIR, a
    free port, a working directory outside the repository), runs one task over HTTP
    with the demo key it prints (POST /v1/executions, then GET /v1/tasks/{id}/stream
    until `task_done` with status completed), stops it with SIGINT and checks it exits.
python .ci/smoke.py bench-extra PROMPTRELAY_EXECUTABLE
    checks that `promptrelay bench` without the bench extra names the extra and
    exits 2.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 180  # the first start initialises Postgres and fetches the playground bundle
KEY = re.compile(r"^\s+(ps_\S+)\s*$")


def fail(message: str, output: str = "") -> int:
    print(f"smoke: FAILED: {message}", file=sys.stderr)
    if output:
        print(output, file=sys.stderr)
    return 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(data_dir: str) -> dict[str, str]:
    """The environment without anything that points at a server, a provider or the repo."""
    drop = ("DATABASE_URL", "REDIS_URL", "PYTHONPATH", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PROMPTRELAY_DATA_DIR=data_dir, PYTHONUNBUFFERED="1")
    return env


def call(url: str, key: str, body: object | None = None) -> urllib.request.Request:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return urllib.request.Request(url, data=data, headers=headers)


def run_task(base: str, key: str) -> dict[str, object]:
    """One task over HTTP: its `task_done` payload, read from the SSE stream."""
    body = {"messages": [{"role": "user", "content": "Hello from CI"}]}
    with urllib.request.urlopen(call(f"{base}/v1/executions", key, body), timeout=30) as resp:
        accepted = json.load(resp)
    task_id = accepted["task_id"]
    event = None
    stream = call(f"{base}/v1/tasks/{task_id}/stream?after_seq=0", key)
    with urllib.request.urlopen(stream, timeout=60) as resp:
        for raw in resp:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "task_done":
                done: dict[str, object] = json.loads(line.split(":", 1)[1])
                return done
    raise RuntimeError(f"the stream of task {task_id} ended without task_done")


def serve(exe: str) -> int:
    with tempfile.TemporaryDirectory(prefix="promptrelay-smoke-") as tmp:
        port = free_port()
        proc = subprocess.Popen(
            [exe, "serve", "--port", str(port)],
            cwd=tmp,  # outside the repository: the installed package, not the sources
            env=clean_env(str(Path(tmp) / "data")),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        key = None
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    return fail("serve exited before listening", "".join(lines))
                lines.append(line)
                if match := KEY.match(line):
                    key = match.group(1)
                if "promptrelay listening on" in line:
                    break
            else:
                return fail("serve did not print its listening line", "".join(lines))
            if key is None:
                return fail("serve printed no demo key", "".join(lines))
            done = run_task(f"http://127.0.0.1:{port}", key)
            if done.get("status") != "completed":
                return fail(f"the task ended {done.get('status')!r}: {done}")
            print(f"smoke: a task completed over HTTP ({done.get('usage')})")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return fail("serve did not exit within 60 s of SIGINT", "".join(lines))
            rest = proc.stdout.read()
            proc.stdout.close()
        if code != 0:
            return fail(f"serve exited {code} after SIGINT", "".join(lines) + rest)
        print("smoke: serve stopped on SIGINT (exit 0)")
        return 0


def bench_extra(exe: str) -> int:
    with tempfile.TemporaryDirectory(prefix="promptrelay-smoke-") as tmp:
        out = subprocess.run(
            [exe, "bench", "--spawn"],
            cwd=tmp,
            env=clean_env(tmp),
            capture_output=True,
            text=True,
            timeout=60,
        )
    said = out.stdout + out.stderr
    if out.returncode != 2 or "'bench' extra" not in said or "promptrelay[bench]" not in said:
        return fail(f"`promptrelay bench` without its extra exited {out.returncode}", said)
    print(f"smoke: `promptrelay bench` without the extra: {said.strip()}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("serve", "bench-extra"):
        print(__doc__)
        sys.exit(2)
    sys.exit(serve(sys.argv[2]) if sys.argv[1] == "serve" else bench_extra(sys.argv[2]))
