"""The TypeScript client package (clients/typescript) under `node --test`, against two real
nodes behind a load balancer that the JS tests cut, hold and switch through the harness's
control API: chunks before the ack, a dropped transport, a draining node, cancel, error
acks, the Redux store."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from pydantic import SecretStr

from engine.settings import Settings
from tests.client_harness import harness
from tests.conftest import SMALL_LIMIT, Server, require, start_server, stop_server
from tests.test_auth import AUDIENCE, ISSUER, SECRET

PACKAGE = Path(__file__).resolve().parent.parent / "clients" / "typescript"


async def run_node(env: dict[str, str], *args: str, timeout: float = 240) -> str:
    node = shutil.which("node")
    require(node is not None, "node not found")
    require(
        (PACKAGE / "node_modules" / "socket.io-client").exists(),
        "run `npm ci --prefix clients/typescript`",
    )
    proc = await asyncio.create_subprocess_exec(
        node or "node",
        *args,
        cwd=PACKAGE,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    return text


@pytest.mark.timeout(300)
async def test_typescript_client_and_redux_binding(settings: Settings) -> None:
    async with harness(settings) as h:
        env = {
            "PROMPTRELAY_URL": h.url,
            "PROMPTRELAY_TOKEN": h.token,
            "PROMPTRELAY_CONTROL": h.control_url,
        }
        out = await run_node(
            env,
            "--test",
            "--test-concurrency=1",
            "test/request-id.test.js",
            "test/redux.test.js",
            "test/client.test.js",
            "test/reasoning.test.js",
        )
    assert "# fail 0" in out, out
    assert "# pass 20" in out, out


@pytest.mark.timeout(300)
async def test_typescript_client_when_credentials_end(
    settings: Settings, small_server: Server
) -> None:
    """test/auth.test.js: a JWT expiring mid-stream (with and without a token provider), a
    key revoked mid-stream (a server taking JWTs that re-checks sessions every 0.3 s), a
    payload the transport drops, rate_limited executes (a server allowing 2 events a
    second)."""
    slow = await start_server(settings.model_copy(update={"max_events_per_second": 2.0}))
    srv = await start_server(
        settings.model_copy(
            update={
                "jwt_secret": SecretStr(SECRET),
                "jwt_audience": AUDIENCE,
                "jwt_issuer": ISSUER,
                "auth_recheck_s": 0.3,
            }
        )
    )
    try:
        env = {
            "PROMPTRELAY_JWT_URL": srv.url,
            "PROMPTRELAY_JWT_SECRET": SECRET,
            "PROMPTRELAY_JWT_AUDIENCE": AUDIENCE,
            "PROMPTRELAY_JWT_ISSUER": ISSUER,
            "PROMPTRELAY_OWNER_KEY": await srv.new_key(),
            "PROMPTRELAY_SMALL_URL": small_server.url,
            "PROMPTRELAY_SMALL_KEY": await small_server.new_key(),
            "PROMPTRELAY_SMALL_LIMIT": str(SMALL_LIMIT),
            "PROMPTRELAY_SLOW_URL": slow.url,
            "PROMPTRELAY_SLOW_KEY": await slow.new_key(),
        }
        out = await run_node(env, "--test", "--test-concurrency=1", "test/auth.test.js")
    finally:
        await stop_server(srv)
        await stop_server(slow)
    assert "# fail 0" in out, out
    assert "# pass 6" in out, out


@pytest.mark.timeout(180)
async def test_typescript_client_library_and_agent_routes(server: Server) -> None:
    """test/library.test.js: prompts (mine, an org's, filters, paging), the template
    gallery (publish, search, tags, fork, stats, unpublish) and agents (create, list,
    update, run, executions, delete), two users against one real server."""
    env = {
        "PROMPTRELAY_LIBRARY_URL": server.url,
        "PROMPTRELAY_OWNER_KEY": await server.new_key(),
        "PROMPTRELAY_MEMBER_KEY": await server.new_key(),
    }
    out = await run_node(env, "--test", "--test-concurrency=1", "test/library.test.js")
    assert "# fail 0" in out, out
    assert "# pass 3" in out, out


async def test_type_definitions_describe_what_an_application_writes() -> None:
    """`tsc` (strict) compiles a typed usage of the package against its .d.ts files and
    the generated protocol types: a wrong or unresolvable declaration fails here."""
    require((PACKAGE / "node_modules" / "typescript").exists(), "run npm ci in clients/typescript")
    out = await run_node({}, "node_modules/typescript/bin/tsc", "-p", "test/types", timeout=120)
    assert "error" not in out, out


async def run(*args: str, cwd: Path, timeout: float = 180) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    return text


@pytest.mark.timeout(300)
async def test_package_installs_as_an_app_installs_it() -> None:
    """`npm pack`, then the tarball installed into a scratch app (from the npm cache where it
    can): the app imports the client and the Redux binding, and the client finds
    socket.io-client by itself."""
    npm = shutil.which("npm")
    require(npm is not None and shutil.which("node") is not None, "npm not found")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        out = await run(npm or "npm", "pack", "--json", "--pack-destination", tmp, cwd=PACKAGE)
        packed = json.loads(out[out.index("[") :])[0]
        files = {f["path"] for f in packed["files"]}
        assert {"README.md", "package.json", "protocol.d.ts", "src/index.js"} <= files
        assert not any(f.startswith(("test/", "node_modules/")) for f in files)
        app = scratch / "app"
        app.mkdir()
        (app / "package.json").write_text('{"name": "app", "version": "1.0.0", "type": "module"}')
        await run(
            npm or "npm",
            "install",
            "--prefer-offline",
            "--no-audit",
            "--no-fund",
            str(scratch / packed["filename"]),
            "redux@5",
            cwd=app,
        )
        (app / "main.js").write_text(
            'import { createClient, PromptrelayError } from "promptrelay-client";\n'
            'import { reducer, execute } from "promptrelay-client/redux";\n'
            'const client = createClient({ url: "http://127.0.0.1:9", token: "t" });\n'
            "const socket = await client.ready;\n"
            "client.close();\n"
            "const state = reducer(undefined, execute({}));\n"
            "console.log(typeof socket.emit, typeof PromptrelayError,"
            ' Object.keys(state).join(","));\n'
        )
        out = await run(shutil.which("node") or "node", "main.js", cwd=app)
        assert out.strip() == "function function tasks,runs,failures", out
        # The folder itself, as the docs say to install it: `--install-links`.
        linked = scratch / "linked"
        linked.mkdir()
        (linked / "package.json").write_text((app / "package.json").read_text())
        (linked / "main.js").write_text((app / "main.js").read_text())
        await run(
            npm or "npm",
            "install",
            "--prefer-offline",
            "--no-audit",
            "--no-fund",
            "--install-links",
            str(PACKAGE),
            "redux@5",
            cwd=linked,
        )
        assert not (linked / "node_modules" / "promptrelay-client").is_symlink()
        out = await run(shutil.which("node") or "node", "main.js", cwd=linked)
        assert out.strip() == "function function tasks,runs,failures", out
