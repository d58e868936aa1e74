"""The quick start for real: `promptrelay serve` on embedded servers in a subprocess,
`keys create` beside it, a stream over HTTP, SIGTERM, and data kept across restarts."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def cli() -> list[str]:
    """The installed console script of this interpreter (what the quick start runs)."""
    script = Path(sys.executable).parent / "promptrelay"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY")
    }
    env["PROMPTRELAY_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Serve:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [*cli(), "serve", "--port", str(port)],
            env=env_for(data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        deadline = time.monotonic() + 90
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if "promptrelay listening on" in line:
                break
        else:
            self.proc.kill()
            pytest.fail("serve did not start:\n" + "".join(self.lines))

    def output_until_ready(self) -> str:
        """Everything printed up to the line that says the server listens (printed last)."""
        return "".join(self.lines)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def request(port: int, method: str, path: str, token: str, body: object = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read().decode()
    if path.endswith("/stream") or "/stream?" in path:
        return raw
    return json.loads(raw)


def postgres_running(data_dir: Path) -> bool:
    pid_file = data_dir / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_keys_stream_sigterm_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    serve = Serve(data_dir, port)
    try:
        welcome = serve.output_until_ready()
        demo_key = re.search(r"\b(ps_[A-Za-z0-9_-]{20,})", welcome)
        assert demo_key, welcome
        assert "simulated/default" in welcome
        ack = request(
            port,
            "POST",
            "/v1/executions",
            demo_key.group(1),
            {
                "messages": [{"role": "user", "content": "hi"}],
                "settings": {"max_tokens": 6, "tokens_per_second": 0},
            },
        )
        assert isinstance(ack, dict) and ack["status"] == "running"
        sse = request(port, "GET", f"/v1/tasks/{ack['task_id']}/stream", demo_key.group(1))
        assert isinstance(sse, str) and "event: task_done" in sse

        # keys create works while the server runs on the same data directory.
        made = subprocess.run(
            [*cli(), "keys", "create", "--user", "ops@example.com"],
            env=env_for(data_dir),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        new_key = made.stdout.strip().splitlines()[-1]
        assert new_key.startswith("ps_")
        task = request(port, "GET", f"/v1/tasks/{ack['task_id']}", demo_key.group(1))
        assert isinstance(task, dict) and task["status"] == "completed"
    finally:
        code = serve.stop()
    assert code == 0
    assert not postgres_running(data_dir), "embedded Postgres still running after SIGTERM"

    # Restart: the data is still there, no second demo user, the CLI key still works.
    port = free_port()
    serve = Serve(data_dir, port)
    try:
        welcome = serve.output_until_ready()
        assert "created demo user" not in welcome
        view = request(port, "GET", f"/v1/tasks/{ack['task_id']}", demo_key.group(1))
        assert isinstance(view, dict) and view["status"] == "completed"
        with pytest.raises(urllib.error.HTTPError) as refused:  # the task is the demo user's
            request(port, "GET", f"/v1/tasks/{ack['task_id']}", new_key)
        assert refused.value.code == 404
        refused.value.close()
    finally:
        assert serve.stop() == 0


def test_migrate_applies_once(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data")
    first = subprocess.run(
        [*cli(), "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    assert "001_schema.sql" in first.stdout
    second = subprocess.run(
        [*cli(), "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert "applied 0 migration(s)" in second.stdout
