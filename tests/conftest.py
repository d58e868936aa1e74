"""Real Postgres and Redis once per session; a fresh database and key prefix per test;
the server on an ephemeral port; real Socket.IO clients over real sockets."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import socketio
from aiohttp import web
from pydantic import AliasChoices
from redis.asyncio.cluster import RedisCluster

from db import users
from db.migrate import apply_migrations
from db.pool import connect
from engine.accounts.quotas import Period
from engine.protocol import responses as events
from engine.settings import Settings
from server.app import create_app
from server.http.heads import HANDLER_ARGS, NodeRunner
from server.process.embedded import EmbeddedPostgres, EmbeddedRedis
from server.protocol.contract import check_ack
from server.state import ENGINE
from tests.redis_cluster import RedisClusterProcesses

# Read by the provider SDKs themselves, beside what the settings read.
SDK_ENV = (
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_AUTH_TOKEN",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def require(condition: bool, why: str) -> None:
    """Skip when a tool a test needs (Node.js, the browser) is missing, outside CI; in CI
    (CI=true) a missing piece is a failure."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


async def clear_of_midnight(utc_offset_min: int = 0, margin_s: float = 300.0) -> None:
    """For a test that reads "today" or counts a daily or monthly quota: when the day (UTC,
    or the quota day's `utc_offset_min`) ends in under `margin_s`, wait until it has, so the
    day the test reads is the day the server records."""
    now = datetime.now(UTC)
    left = (Period.at(now, utc_offset_min).day_ends - now).total_seconds()
    if left < margin_s:
        await asyncio.sleep(left + 1.0)


def secret_env() -> set[str]:
    """Every environment variable that carries a provider key or endpoint or a server secret:
    each secret setting, each provider's key and base URL (with their aliases), and SDK_ENV."""
    names = set(SDK_ENV)
    for name, info in Settings.model_fields.items():
        if "SecretStr" in str(info.annotation) or name.endswith(("_api_key", "_base_url")):
            names.add(name.upper())
            if isinstance(info.validation_alias, AliasChoices):
                names |= {str(choice).upper() for choice in info.validation_alias.choices}
    return names


# Before any setting is read or any node is spawned: a developer's own keys never reach a
# test, its settings or the SDKs (which read their variables themselves).
for _name in secret_env():
    os.environ.pop(_name, None)

TEMPLATE_DB = "ps_template"
SMALL_LIMIT = 4096  # max_payload_bytes of the `small_server` fixture
_db_counter = itertools.count()


@dataclass(frozen=True)
class Infra:
    admin_url: str
    redis_url: str
    base_url: str
    redis_cluster: bool = False
    cluster: RedisClusterProcesses | None = None

    def database_url(self, name: str) -> str:
        return self.base_url.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A fresh directory per test outside pytest's own temp root: the embedded Postgres runs
    as another user, and each pytest-xdist worker resets that root to 0700 when it starts."""
    path = Path(tempfile.mkdtemp(prefix="pr-tmp-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def typescript_dependencies() -> None:
    """The JavaScript client's pinned dev dependencies (`npm ci`), installed once when
    Node.js is present and they are not, so the README's test command alone runs the
    TypeScript and client-example tests. A lock keeps xdist workers from installing twice;
    without Node.js or the npm registry those tests skip (fail in CI) with what to run."""
    package = Path(__file__).resolve().parent.parent / "clients" / "typescript"
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return
    with open(Path(tempfile.gettempdir()) / "promptrelay-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (package / "node_modules" / ".package-lock.json").exists():
            return
        done = subprocess.run(
            [npm, "ci", "--prefix", str(package), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            print(f"npm ci in clients/typescript failed:\n{done.stderr}", file=sys.stderr)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    root = Path(tempfile.mkdtemp(prefix="ps-test-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(root))
    pg = EmbeddedPostgres(root / "pg")
    # PROMPTRELAY_TEST_REDIS=cluster: a real Redis Cluster instead of the embedded server.
    in_cluster = os.environ.get("PROMPTRELAY_TEST_REDIS", "") == "cluster"
    redis = RedisClusterProcesses(root / "cluster") if in_cluster else EmbeddedRedis(root / "redis")
    url = pg.start()
    redis.start()

    async def make_template() -> None:
        conn = await asyncpg.connect(url)
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        await conn.close()
        tconn = await connect(url.replace("/postgres?", f"/{TEMPLATE_DB}?", 1))
        await apply_migrations(tconn)
        await tconn.close()

    asyncio.run(make_template())
    try:
        cluster = redis if isinstance(redis, RedisClusterProcesses) else None
        yield Infra(url, redis.url, url, redis_cluster=in_cluster, cluster=cluster)
    finally:
        redis.stop()
        pg.stop()


def redis_of(infra: Infra) -> aioredis.Redis:
    """A client of the tests' Redis: a cluster client with PROMPTRELAY_TEST_REDIS=cluster."""
    if infra.redis_cluster:
        return cast(aioredis.Redis, RedisCluster.from_url(infra.redis_url))
    return aioredis.Redis.from_url(infra.redis_url)


@pytest_asyncio.fixture
async def database_url(infra: Infra) -> AsyncIterator[str]:
    name = f"t_{os.getpid()}_{next(_db_counter)}"
    conn = await asyncpg.connect(infra.admin_url)
    await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    await conn.close()
    yield infra.database_url(name)
    conn = await asyncpg.connect(infra.admin_url)
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await conn.close()


@pytest.fixture
def settings(infra: Infra, database_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=infra.redis_url,
        redis_cluster=infra.redis_cluster,
        redis_prefix=f"t{uuid.uuid4().hex[:8]}:",
        port=0,
        openai_api_key=None,
        coalesce_ms=10,
        db_pool_min=1,
        db_pool_max=10,
        # Short heartbeats: a long-poll client's disconnect waits out the pending poll.
        ping_interval_s=1,
        ping_timeout_s=2,
        # Quotas and caps are tested in tests/test_quotas.py; elsewhere they stay out of the way.
        quota_free_daily=-1,
        max_concurrent_tasks=10_000,
        max_events_per_second=10_000,
        max_http_requests_per_minute=0,  # tested in tests/test_abuse_http.py
        max_http_requests_per_minute_per_address=0,
        shutdown_grace_s=0,  # teardown ends running tasks at once (no SIGTERM grace)
    )


@dataclass
class Server:
    url: str
    app: web.Application
    settings: Settings
    clients: list[socketio.AsyncClient] = field(default_factory=list)

    async def new_key(self, email: str | None = None) -> str:
        conn = await connect(self.settings.database_url or "")
        try:
            user = await users.ensure_user(conn, email or f"{uuid.uuid4().hex[:8]}@test")
            return (await users.create_api_key(conn, user.id)).key
        finally:
            await conn.close()

    async def client(
        self, token: str, transports: list[str] | None = None, *, runs_changed: bool = False
    ) -> Client:
        sio = socketio.AsyncClient(reconnection=False)
        client = Client(sio)
        auth: dict[str, Any] = {"token": token}
        if runs_changed:
            auth["runs_changed"] = True
        await sio.connect(
            self.url, auth=auth, transports=transports or ["websocket"], wait_timeout=10
        )
        self.clients.append(sio)
        return client

    @property
    def engine(self) -> Any:
        return self.app[ENGINE]


class Client:
    """A Socket.IO client that records every task event it receives."""

    def __init__(self, sio: socketio.AsyncClient) -> None:
        self.sio = sio
        self.chunks: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.done: dict[str, dict[str, Any]] = {}
        self.order: dict[str, list[str]] = defaultdict(list)
        self._done_events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._chunk_events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.tool_calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.reasoning: dict[str, list[dict[str, Any]]] = defaultdict(list)
        sio.on("task_chunk", self._on_chunk)
        sio.on("task_tool_call", self._on_tool_call)
        sio.on("task_reasoning", self._on_reasoning)
        sio.on("task_done", self._on_done)

    async def _on_chunk(self, data: dict[str, Any]) -> None:
        events.TaskChunk.model_validate(data)  # every payload a test sees keeps to its type
        self.chunks[data["task_id"]].append(data)
        self.order[data["task_id"]].append("chunk")
        self._chunk_events[data["task_id"]].set()

    async def _on_tool_call(self, data: dict[str, Any]) -> None:
        events.TaskToolCall.model_validate(data)
        self.tool_calls[data["task_id"]].append(data)
        self.order[data["task_id"]].append("tool_call")
        self._chunk_events[data["task_id"]].set()

    async def _on_reasoning(self, data: dict[str, Any]) -> None:
        events.TaskReasoning.model_validate(data)
        self.reasoning[data["task_id"]].append(data)
        self.order[data["task_id"]].append("reasoning")
        self._chunk_events[data["task_id"]].set()

    async def _on_done(self, data: dict[str, Any]) -> None:
        events.TaskDone.model_validate(data)
        self.done[data["task_id"]] = data
        self.order[data["task_id"]].append("done")
        self._done_events[data["task_id"]].set()

    async def call(self, event: str, data: Any, timeout: float = 20) -> dict[str, Any]:
        result: dict[str, Any] = await self.sio.call(event, data, timeout=timeout)
        check_ack(event, result)
        return result

    async def wait_done(self, task_id: str, timeout: float = 20) -> dict[str, Any]:
        await asyncio.wait_for(self._done_events[task_id].wait(), timeout)
        return self.done[task_id]

    async def wait_chunks(self, task_id: str, count: int = 1, timeout: float = 20) -> None:
        """Until at least `count` chunks of the task have arrived (AssertionError past timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        arrived = self._chunk_events[task_id]
        while len(self.chunks[task_id]) < count:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                got = len(self.chunks[task_id])
                raise AssertionError(f"{got} of {count} chunks within {timeout} s") from None

    def text(self, task_id: str) -> str:
        return "".join(c["text"] for c in self.chunks[task_id])

    def seqs(self, task_id: str) -> list[int]:
        return [c["seq"] for c in self.chunks[task_id]]


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for the tests' requests (the timeout only bounds a hung test)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest_asyncio.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    srv = await start_server(settings)
    try:
        yield srv
    finally:
        await stop_server(srv)


@pytest_asyncio.fixture
async def small_server(settings: Settings) -> AsyncIterator[Server]:
    """A server whose payload limit is SMALL_LIMIT bytes."""
    srv = await start_server(settings.model_copy(update={"max_payload_bytes": SMALL_LIMIT}))
    try:
        yield srv
    finally:
        await stop_server(srv)


async def start_server(settings: Settings) -> Server:
    app = create_app(settings)
    runner = NodeRunner(app, shutdown_timeout=5, **HANDLER_ARGS)  # as `promptrelay serve`
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    srv = Server(url=f"http://127.0.0.1:{port}", app=app, settings=settings)
    srv.runner = runner  # type: ignore[attr-defined]
    return srv


async def stop_server(srv: Server) -> None:
    for sio in srv.clients:
        if sio.connected:
            await sio.disconnect()
    await srv.runner.cleanup()  # type: ignore[attr-defined]


def assert_intact(client: Client, task_id: str) -> dict[str, Any]:
    """The stream contract: seq 1..n without gaps, text = concat of chunks, done last."""
    done = client.done[task_id]
    seqs = client.seqs(task_id)
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert done["last_seq"] == len(seqs)
    assert client.text(task_id) == done["text"]
    assert client.order[task_id][-1] == "done"
    assert client.order[task_id].count("done") == 1
    return done


# Provider fakes: local servers of each provider's wire format, and a gateway wired to them
# (tests/provider_env.py). Imported when used: provider_env imports this module.
@pytest_asyncio.fixture
async def fk() -> AsyncIterator[Any]:
    from tests.provider_env import fakes

    async with fakes() as f:
        yield f


@pytest_asyncio.fixture
async def srv(settings: Settings, fk: Any) -> AsyncIterator[Server]:
    from tests.provider_env import provider_server

    async with provider_server(settings, fk) as server:
        yield server
