"""The OpenAI-compatible endpoint driven by the official `openai` JavaScript SDK, unchanged
(tests/js/openai-sdk: the SDK pinned with its lockfile, installed by `npm ci`), against a
real server with the fake OpenAI behind it: streaming with usage, a plain completion,
reasoning (`reasoning_effort`, `delta.reasoning_content`), a streamed tool call and its
result, the model list, a bad key. What the script reports is checked against the stored
tasks and the requests the fake provider received."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from engine.settings import Settings
from tests.conftest import require
from tests.provider_env import Fakes, provider_server, task_row

PACKAGE = Path(__file__).resolve().parent / "js" / "openai-sdk"


@pytest.fixture(scope="module")
def openai_sdk() -> Path:
    """The pinned SDK, installed once (`npm ci`) when Node.js is present and it is not."""
    npm, node = shutil.which("npm"), shutil.which("node")
    require(npm is not None and node is not None, "node and npm not found")
    with open(Path(tempfile.gettempdir()) / "promptrelay-npm-ci-openai.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (PACKAGE / "node_modules" / ".package-lock.json").exists():
            subprocess.run(
                [npm or "npm", "ci", "--prefix", str(PACKAGE), "--no-audit", "--no-fund"],
                capture_output=True,
                timeout=300,
                check=False,
            )
    require(
        (PACKAGE / "node_modules" / "openai").exists(),
        "run `npm ci --prefix tests/js/openai-sdk`",
    )
    return PACKAGE


async def run_check(env: dict[str, str]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        "check.js",
        cwd=PACKAGE,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("RESULT "), text
    found: dict[str, Any] = json.loads(last.removeprefix("RESULT "))
    return found


def task_of(completion_id: str) -> str:
    assert completion_id.startswith("chatcmpl-")
    return completion_id.removeprefix("chatcmpl-")


async def ended(server: Any, task_id: str) -> Any:
    for _ in range(600):
        row = await task_row(server, task_id)
        if row["status"] in ("completed", "failed", "cancelled"):
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not end")


@pytest.mark.timeout(180)
async def test_the_official_javascript_sdk_works_unchanged(
    settings: Settings, fk: Fakes, openai_sdk: Path
) -> None:
    async with provider_server(settings, fk) as server:
        found = await run_check(
            {"PROMPTRELAY_URL": server.url, "PROMPTRELAY_KEY": await server.new_key()}
        )

        streamed = await ended(server, task_of(found["streamed"]["id"]))
        assert streamed["status"] == "completed"
        assert streamed["response_text"] == found["streamed"]["text"]
        assert (streamed["input_tokens"], streamed["output_tokens"]) == (2, 20)
        plain = await ended(server, task_of(found["plain"]["id"]))
        assert plain["response_text"] == found["plain"]["text"]
        assert json.loads(plain["request"])["messages"][0] == {
            "role": "system",
            "content": "Be brief.",
        }

        assert found["reasoning"]["reasoning"].strip() not in found["reasoning"]["text"]

        calls = found["tools"]["calls"]
        first = await ended(server, task_of(found["tools"]["id"]))
        assert first["status"] == "completed" and first["provider"] == "openai"
        # three requests reached the fake OpenAI: the streamed call, the helper's, the results
        assert len(fk.openai.requests) == 3
        assert [t["function"]["name"] for t in fk.openai.requests[0]["tools"]] == [
            "weather",
            "time",
        ]
        sent = fk.openai.requests[-1]["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
        assert [(m["tool_call_id"], m["content"]) for m in sent[2:]] == [
            (calls[0]["id"], "r0"),
            (calls[1]["id"], "r1"),
        ]
        assert (await ended(server, task_of(found["tools"]["answer"])))["status"] == "completed"
        assert found["models"] > 3 and found["unauthorized"] is True
