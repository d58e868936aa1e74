"""The examples of docs/clients.md, taken from the page and run against a real server: the
plain JavaScript, Redux and Python chats, and the browser's fetch reading of the SSE stream
(resumed with Last-Event-ID). An example that drifts from its client fails here."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, require
from tests.test_client_typescript import PACKAGE

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "clients.md"
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```\w+\n(.*?)```", re.S)
SSE_DRIVER = """
const { PROMPTRELAY_URL: base, PROMPTRELAY_TOKEN: token, TASK_ID: taskId } = process.env;
const seen = [];
for await (const e of taskEvents(base, token, taskId)) {
  seen.push(e);
  if (seen.length === 3) break;
}
for await (const e of taskEvents(base, token, taskId, seen[2].id)) seen.push(e);
console.log(JSON.stringify(seen));
"""


def examples() -> dict[str, str]:
    found = dict(EXAMPLE.findall(DOC.read_text()))
    assert set(found) == {"chat.mjs", "chat-redux.mjs", "chat.py", "sse.mjs"}, set(found)
    return found


async def run(server: Server, name: str, code: str, **env: str) -> str:
    """Run one example as a user would: JS inside the package (its name resolves to
    itself), Python with the project importable."""
    if name.endswith(".py"):
        command, where = [sys.executable], ROOT / "artifacts" / "examples"
    else:
        node = shutil.which("node")
        require(node is not None, "node not found")
        require((PACKAGE / "node_modules" / "redux").exists(), "run `npm ci` in clients/typescript")
        command, where = [node or "node"], PACKAGE / ".examples"
    where.mkdir(parents=True, exist_ok=True)
    path = where / name
    path.write_text(code)
    key = await server.new_key()
    proc = await asyncio.create_subprocess_exec(
        *command,
        str(path),
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PROMPTRELAY_URL": server.url,
            "PROMPTRELAY_TOKEN": env.pop("token", key),
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def answers(out: str) -> list[tuple[str, int]]:
    return [(s, int(n)) for s, n in re.findall(r"\[(\w+), (\d+) tokens\]", out)]


@pytest.mark.parametrize("name", ["chat.mjs", "chat.py"])
async def test_chat_example(server: Server, name: str) -> None:
    out = await run(server, name, examples()[name])
    got = answers(out)
    assert [s for s, _ in got] == ["completed", "completed"], out
    # The second answer saw the first turn: the conversation was continued.
    assert got[1][1] > got[0][1], out
    assert len(out.splitlines()[0]) > len("[completed, 0 tokens]"), out  # streamed text


async def test_redux_example(server: Server) -> None:
    out = await run(server, "chat-redux.mjs", examples()["chat-redux.mjs"])
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["user", "assistant", "user", "assistant"]
    assert lines[0] == "user: Hello!" and lines[2] == "user: Tell me more."
    assert all(len(line) > len("assistant: ") for line in lines[1::2]), out


async def test_sse_fetch_example_resumes_without_gap_or_repeat(server: Server) -> None:
    key = await server.new_key()
    client = await server.client(key)
    ack = await client.call(
        "execute",
        {
            "messages": [{"role": "user", "content": "Hi"}],
            "model": "simulated/x",
            "settings": {"max_tokens": 40, "tokens_per_second": 40},
        },
    )
    code = examples()["sse.mjs"] + SSE_DRIVER
    out = await run(server, "sse.mjs", code, token=key, TASK_ID=ack["task_id"])
    seen: list[dict[str, Any]] = json.loads(out)
    done = await client.wait_done(ack["task_id"])
    chunks = [e for e in seen if e["event"] == "task_chunk"]
    assert [e["id"] for e in chunks] == list(range(1, done["last_seq"] + 1))
    assert "".join(e["data"]["text"] for e in chunks) == done["text"]
    assert seen[-1]["event"] == "task_done" and seen[-1]["id"] == done["last_seq"]
